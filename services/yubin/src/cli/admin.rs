//! The admin CLI's flags: `yubin user|alias|domain|mailbox …`, clients of the admin API.

use clap::{Args, Subcommand};

/// Where the admin API is (every admin subcommand takes it).
#[derive(Debug, Args)]
pub struct AdminApiArgs {
    /// The admin API's base URL (meta's HTTP port, or `yubin dev`'s); the bearer token comes
    /// from YUBIN_ADMIN_TOKEN.
    #[arg(
        long,
        env = "YUBIN_ADMIN",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub admin: String,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub api: AdminApiArgs,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add {
        name: String,
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set an account's password.
    Passwd {
        name: String,
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts (id, name, state), in name order.
    List,
    /// Show an account: state, quota usage and limits, mailboxes.
    Show { name: String },
    /// Disable an account: it cannot log in and receives no mail; its data is kept.
    Disable { name: String },
    /// Enable a disabled account.
    Enable { name: String },
    /// Delete an account with all its mail and message bodies (cannot be undone).
    Delete {
        name: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
    /// Show the quota usage, or set limits: sizes in bytes or with K/M/G/T (1024-based),
    /// `unlimited` to remove a limit; a limit not given stays as it is.
    Quota {
        name: String,
        #[arg(long)]
        storage: Option<String>,
        #[arg(long)]
        messages: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct AliasArgs {
    #[command(flatten)]
    pub api: AdminApiArgs,
    #[command(subcommand)]
    pub command: AliasCommand,
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Deliver mail for ADDRESS to the account USER (re-points an existing alias).
    Add { address: String, user: String },
    /// Remove an alias.
    Delete { address: String },
    /// List aliases (address, account).
    List,
}

#[derive(Debug, Args)]
pub struct DomainArgs {
    #[command(flatten)]
    pub api: AdminApiArgs,
    #[command(subcommand)]
    pub command: DomainCommand,
}

#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Add a domain of the installation, or with --alias-of an alias domain.
    Add {
        name: String,
        #[arg(long)]
        alias_of: Option<String>,
    },
    /// Remove a domain.
    Delete { name: String },
    /// List domains.
    List,
}

#[derive(Debug, Args)]
pub struct MailboxArgs {
    #[command(flatten)]
    pub api: AdminApiArgs,
    #[command(subcommand)]
    pub command: MailboxCommand,
}

#[derive(Debug, Subcommand)]
pub enum MailboxCommand {
    /// List an account's mailboxes (name, messages, unseen, bytes, special use).
    List { user: String },
    /// Create a mailbox (and its missing superiors).
    Create {
        user: String,
        name: String,
        /// \All, \Archive, \Drafts, \Flagged, \Junk, \Sent or \Trash (RFC 6154).
        #[arg(long)]
        special_use: Option<String>,
    },
    /// Delete a mailbox and its messages (not INBOX).
    Delete { user: String, name: String },
}
