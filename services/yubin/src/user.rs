//! `yubin user|alias|domain|mailbox …`: account management through the admin REST API (bearer
//! token from `YUBIN_ADMIN_TOKEN`). Output is one record per line, fields separated by tabs,
//! so scripts can cut it.

use crate::cli::{AdminCommand, AliasCommand, DomainCommand, MailboxCommand, UserCommand};
use anyhow::{Context, bail};
use std::io::BufRead;
use yubin_meta::AdminClient;
use yubin_meta_api::QuotaLimits;

pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    let token = std::env::var("YUBIN_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let admin = match &command {
        AdminCommand::User(a) => &a.api.admin,
        AdminCommand::Alias(a) => &a.api.admin,
        AdminCommand::Domain(a) => &a.api.admin,
        AdminCommand::Mailbox(a) => &a.api.admin,
    };
    let client = AdminClient::new(admin, token);
    match command {
        AdminCommand::User(a) => user(&client, a.command).await,
        AdminCommand::Alias(a) => alias(&client, a.command).await,
        AdminCommand::Domain(a) => domain(&client, a.command).await,
        AdminCommand::Mailbox(a) => mailbox(&client, a.command).await,
    }
}

async fn user(client: &AdminClient, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            password,
            password_stdin,
        } => {
            let password = password_from(password, password_stdin)?;
            let user = client.create_user(&name, &password).await?;
            println!("created user {} (id {})", user.name, user.id);
        }
        UserCommand::Passwd {
            name,
            password,
            password_stdin,
        } => {
            let password = password_from(password, password_stdin)?;
            client.set_password(&name, &password).await?;
            println!("password of {name} changed");
        }
        UserCommand::List => {
            for user in client.list_users().await? {
                let state = if user.disabled { "disabled" } else { "enabled" };
                println!("{}\t{}\t{state}", user.id, user.name);
            }
        }
        UserCommand::Show { name } => {
            let Some(user) = client.get_user(&name).await? else {
                bail!("user {name} does not exist");
            };
            let usage = client.usage(&user.name).await?;
            let boxes = client.list_mailboxes(&user.name).await?;
            println!("id\t{}", user.id);
            println!("name\t{}", user.name);
            println!(
                "state\t{}",
                if user.disabled { "disabled" } else { "enabled" }
            );
            println!(
                "storage\t{} of {} bytes",
                usage.storage_bytes,
                limit_text(usage.limits.storage_bytes)
            );
            println!(
                "messages\t{} of {}",
                usage.messages,
                limit_text(usage.limits.messages)
            );
            println!("mailboxes\t{}", boxes.len());
        }
        UserCommand::Disable { name } => {
            client.set_disabled(&name, true).await?;
            println!("user {name} disabled");
        }
        UserCommand::Enable { name } => {
            client.set_disabled(&name, false).await?;
            println!("user {name} enabled");
        }
        UserCommand::Delete { name, yes } => {
            if !yes {
                bail!("deleting {name} removes all of its mail for good: add --yes to confirm");
            }
            let deleted = client.delete_user(&name).await?;
            println!(
                "deleted user {} (id {}) and {} message bodies",
                deleted.name, deleted.id, deleted.blobs_deleted
            );
        }
        UserCommand::Quota {
            name,
            storage,
            messages,
        } => {
            let mut usage = client.usage(&name).await?;
            if storage.is_some() || messages.is_some() {
                // The API sets both limits at once; the one not given keeps its value.
                let limits = QuotaLimits {
                    storage_bytes: match storage {
                        Some(s) => parse_limit(&s, true).context("--storage")?,
                        None => usage.limits.storage_bytes,
                    },
                    messages: match messages {
                        Some(m) => parse_limit(&m, false).context("--messages")?,
                        None => usage.limits.messages,
                    },
                };
                usage = client.set_quota(&name, limits).await?;
            }
            println!(
                "storage\t{}\t{}",
                usage.storage_bytes,
                limit_text(usage.limits.storage_bytes)
            );
            println!(
                "messages\t{}\t{}",
                usage.messages,
                limit_text(usage.limits.messages)
            );
        }
    }
    Ok(())
}

async fn alias(client: &AdminClient, command: AliasCommand) -> anyhow::Result<()> {
    match command {
        AliasCommand::Add { address, user } => {
            let alias = client.put_alias(&address, &user).await?;
            println!("alias {} -> {}", alias.address, alias.target);
        }
        AliasCommand::Delete { address } => {
            client.delete_alias(&address).await?;
            println!("alias {address} deleted");
        }
        AliasCommand::List => {
            for alias in client.list_aliases().await? {
                println!("{}\t{}", alias.address, alias.target);
            }
        }
    }
    Ok(())
}

async fn domain(client: &AdminClient, command: DomainCommand) -> anyhow::Result<()> {
    match command {
        DomainCommand::Add { name, alias_of } => {
            let domain = client.put_domain(&name, alias_of.as_deref()).await?;
            match domain.alias_of {
                Some(target) => println!("domain {} (alias of {target})", domain.name),
                None => println!("domain {}", domain.name),
            }
        }
        DomainCommand::Delete { name } => {
            client.delete_domain(&name).await?;
            println!("domain {name} deleted");
        }
        DomainCommand::List => {
            for d in client.list_domains().await? {
                println!("{}\t{}", d.name, d.alias_of.as_deref().unwrap_or("-"));
            }
        }
    }
    Ok(())
}

async fn mailbox(client: &AdminClient, command: MailboxCommand) -> anyhow::Result<()> {
    match command {
        MailboxCommand::List { user } => {
            for m in client.list_mailboxes(&user).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    m.name,
                    m.messages,
                    m.unseen,
                    m.size,
                    m.special_use.as_deref().unwrap_or("-")
                );
            }
        }
        MailboxCommand::Create {
            user,
            name,
            special_use,
        } => {
            let m = client
                .create_mailbox(&user, &name, special_use.as_deref())
                .await?;
            println!("mailbox {} created for {user}", m.name);
        }
        MailboxCommand::Delete { user, name } => {
            client.delete_mailbox(&user, &name).await?;
            println!("mailbox {name} of {user} deleted");
        }
    }
    Ok(())
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_string(), |l| l.to_string())
}

/// A limit as given on the command line: `unlimited` (or `none`), a number, or for sizes a
/// number with a K, M, G or T suffix (powers of 1024).
fn parse_limit(text: &str, size: bool) -> anyhow::Result<Option<u64>> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let (digits, factor) = match t.char_indices().last() {
        Some((i, c)) if size && c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => bail!("unknown size suffix in {text:?}: use K, M, G or T"),
            };
            (&t[..i], 1u64 << shift)
        }
        _ => (t, 1),
    };
    let n: u64 = digits
        .parse()
        .with_context(|| format!("{text:?} is not a number or `unlimited`"))?;
    n.checked_mul(factor)
        .map(Some)
        .with_context(|| format!("{text:?} is too large"))
}

fn password_from(flag: Option<String>, stdin: bool) -> anyhow::Result<String> {
    match (flag, stdin) {
        (Some(p), false) => Ok(p),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let p = line.trim_end_matches(['\r', '\n']).to_string();
            if p.is_empty() {
                bail!("empty password on standard input");
            }
            Ok(p)
        }
        _ => bail!("give --password PASS or --password-stdin"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_limit;

    #[test]
    fn limits() {
        assert_eq!(parse_limit("unlimited", true).unwrap(), None);
        assert_eq!(parse_limit("None", false).unwrap(), None);
        assert_eq!(parse_limit("1500", true).unwrap(), Some(1500));
        assert_eq!(parse_limit("2K", true).unwrap(), Some(2048));
        assert_eq!(parse_limit("10m", true).unwrap(), Some(10 << 20));
        assert_eq!(parse_limit("1G", true).unwrap(), Some(1 << 30));
        assert_eq!(parse_limit("3", false).unwrap(), Some(3));
        for bad in ["", "-1", "1.5G", "2X", "K", "lots", "99999999999T"] {
            assert!(parse_limit(bad, true).is_err(), "{bad:?}");
        }
        assert!(
            parse_limit("2K", false).is_err(),
            "message counts take no suffix"
        );
    }
}
