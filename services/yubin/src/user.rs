//! `yubin user …`: account management through the admin REST API (bearer token from
//! `YUBIN_ADMIN_TOKEN`).

use crate::cli::{UserArgs, UserCommand};
use anyhow::{Context, bail};
use std::io::BufRead;
use yubin_meta::AdminClient;

pub async fn run(args: UserArgs) -> anyhow::Result<()> {
    let token = std::env::var("YUBIN_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let client = AdminClient::new(&args.admin, token);
    match args.command {
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
                let state = if user.disabled { " (disabled)" } else { "" };
                println!("{}\t{}{}", user.id, user.name, state);
            }
        }
    }
    Ok(())
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
