//! The Lua scripts the store runs, each with the shared prelude and the store's limits.

use redis::Script;

use super::observe;
use crate::StoreLimits;

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// Every script, with the shared prelude prepended; loaded on first use (EVALSHA, falling back
/// to EVAL when the server does not know the script, e.g. after a restart).
pub(super) struct Scripts {
    pub(super) list: Script,
    pub(super) status: Script,
    pub(super) select: Script,
    pub(super) create: Script,
    pub(super) delete: Script,
    pub(super) rename: Script,
    pub(super) subscribe: Script,
    pub(super) append: Script,
    pub(super) fetch: Script,
    pub(super) search: Script,
    pub(super) search_texts: Script,
    pub(super) store: Script,
    pub(super) copy: Script,
    pub(super) expunge: Script,
    pub(super) changes: Script,
    pub(super) user_create: Script,
    pub(super) user_drop: Script,
    pub(super) user_password: Script,
    pub(super) user_disable: Script,
    pub(super) user_alias: Script,
    pub(super) quota: Script,
    pub(super) quota_set: Script,
    pub(super) claim_recent: Script,
    pub(super) metadata_get: Script,
    pub(super) metadata_set: Script,
    pub(super) revalidate: Script,
    pub(super) global_unname: Script,
    pub(super) global_unalias: Script,
    pub(super) global_domain_put: Script,
    pub(super) global_domain_delete: Script,
    pub(super) failure_add: Script,
    pub(super) index_claim: Script,
    pub(super) index_commit: Script,
    pub(super) index_migrate: Script,
}

/// A script: which publish command to use (`PUBLISH`, or `SPUBLISH` for sharded pub/sub on a
/// cluster), the store's limits, the prelude, then the body. The limits are part of the script
/// text rather than arguments so that every script sees them without a change to its ARGV
/// layout; stores with other limits load other scripts (another SHA).
fn script(publish: &str, limits: &StoreLimits, body: &str) -> Script {
    Script::new(&format!(
        "local PUBLISH_CMD = '{publish}'\n\
         local MAX_KEYWORDS_PER_MESSAGE = {}\n\
         local MAX_KEYWORDS_PER_MAILBOX = {}\n\
         local MAX_MAILBOXES = {}\n\
         local MAX_METADATA_BYTES = {}\n\
         local MAX_EXPUNGE_LOG = {}\n\
         {PRELUDE}\n{body}",
        limits.max_keywords_per_message,
        limits.max_keywords_per_mailbox,
        limits.max_mailboxes,
        limits.max_metadata_bytes_per_account,
        limits.max_expunge_log
    ))
}

impl Scripts {
    pub(super) fn new(publish: &str, limits: &StoreLimits) -> Scripts {
        let script = |body| script(publish, limits, body);
        let scripts = Scripts {
            list: script(include_str!("lua/list.lua")),
            status: script(include_str!("lua/status.lua")),
            select: script(include_str!("lua/select.lua")),
            create: script(include_str!("lua/create.lua")),
            delete: script(include_str!("lua/delete.lua")),
            rename: script(include_str!("lua/rename.lua")),
            subscribe: script(include_str!("lua/subscribe.lua")),
            append: script(include_str!("lua/append.lua")),
            fetch: script(include_str!("lua/fetch.lua")),
            search: script(include_str!("lua/search.lua")),
            search_texts: script(include_str!("lua/search_texts.lua")),
            store: script(include_str!("lua/store.lua")),
            copy: script(include_str!("lua/copy.lua")),
            expunge: script(include_str!("lua/expunge.lua")),
            changes: script(include_str!("lua/changes.lua")),
            user_create: script(include_str!("lua/user_create.lua")),
            user_drop: script(include_str!("lua/user_drop.lua")),
            user_password: script(include_str!("lua/user_password.lua")),
            user_disable: script(include_str!("lua/user_disable.lua")),
            user_alias: script(include_str!("lua/user_alias.lua")),
            quota: script(include_str!("lua/quota.lua")),
            quota_set: script(include_str!("lua/quota_set.lua")),
            claim_recent: script(include_str!("lua/claim_recent.lua")),
            metadata_get: script(include_str!("lua/metadata_get.lua")),
            metadata_set: script(include_str!("lua/metadata_set.lua")),
            revalidate: script(include_str!("lua/revalidate.lua")),
            // Scripts on one global key: no user prefix, no prelude.
            global_unname: Script::new(include_str!("lua/global_unname.lua")),
            global_unalias: Script::new(include_str!("lua/global_unalias.lua")),
            global_domain_put: Script::new(include_str!("lua/global_domain_put.lua")),
            global_domain_delete: Script::new(include_str!("lua/global_domain_delete.lua")),
            failure_add: Script::new(include_str!("lua/failure_add.lua")),
            index_claim: script(include_str!("lua/index_claim.lua")),
            index_commit: script(include_str!("lua/index_commit.lua")),
            index_migrate: script(include_str!("lua/index_migrate.lua")),
        };
        scripts.name_for_observe();
        scripts
    }

    /// Names every script for the Redis metrics and spans (see `observe`). The destructuring
    /// is exhaustive so that a script added to [`Scripts`] cannot be left unnamed.
    fn name_for_observe(&self) {
        let Scripts {
            list,
            status,
            select,
            create,
            delete,
            rename,
            subscribe,
            append,
            fetch,
            search,
            search_texts,
            store,
            copy,
            expunge,
            changes,
            user_create,
            user_drop,
            user_password,
            user_disable,
            user_alias,
            quota,
            quota_set,
            claim_recent,
            metadata_get,
            metadata_set,
            revalidate,
            global_unname,
            global_unalias,
            global_domain_put,
            global_domain_delete,
            failure_add,
            index_claim,
            index_commit,
            index_migrate,
        } = self;
        for (name, script) in [
            ("list", list),
            ("status", status),
            ("select", select),
            ("create", create),
            ("delete", delete),
            ("rename", rename),
            ("subscribe", subscribe),
            ("append", append),
            ("fetch", fetch),
            ("search", search),
            ("search_texts", search_texts),
            ("store", store),
            ("copy", copy),
            ("expunge", expunge),
            ("changes", changes),
            ("user_create", user_create),
            ("user_drop", user_drop),
            ("user_password", user_password),
            ("user_disable", user_disable),
            ("user_alias", user_alias),
            ("quota", quota),
            ("quota_set", quota_set),
            ("claim_recent", claim_recent),
            ("metadata_get", metadata_get),
            ("metadata_set", metadata_set),
            ("revalidate", revalidate),
            ("global_unname", global_unname),
            ("global_unalias", global_unalias),
            ("global_domain_put", global_domain_put),
            ("global_domain_delete", global_domain_delete),
            ("failure_add", failure_add),
            ("index_claim", index_claim),
            ("index_commit", index_commit),
            ("index_migrate", index_migrate),
        ] {
            observe::register_script(script.get_hash(), name);
        }
    }
}
