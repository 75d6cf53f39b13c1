//! A script call being built. Unlike `redis::ScriptInvocation` it hands out its `EVALSHA`
//! command, so that a write can travel in one pipeline with the `WAIT` that acknowledges it
//! (see `durability`).

use redis::{Cmd, Script, ToRedisArgs};

pub(super) struct Call<'a> {
    pub(super) script: &'a Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl<'a> Call<'a> {
    pub(super) fn new(script: &'a Script) -> Call<'a> {
        Call {
            script,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    pub(super) fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Call<'a> {
        key.write_redis_args(&mut self.keys);
        self
    }

    pub(super) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Call<'a> {
        arg.write_redis_args(&mut self.args);
        self
    }

    /// `EVALSHA <sha> <numkeys> <keys…> <args…>`; the cluster client routes it by its first key.
    pub(super) fn evalsha(&self) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash())
            .arg(self.keys.len())
            .arg(&*self.keys)
            .arg(&*self.args);
        cmd
    }
}
