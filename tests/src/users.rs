//! Restricted users for the security tests (docs/design.md §14): RabbitMQ users made with
//! `rabbitmqctl` and Redis ACL users made with `ACL SETUSER` on the shared services, each
//! removed again on drop (also when the test panics).
//!
//! The permissions beat and worker need are defined here once, per namespace: the README's
//! least-privilege commands are these rendered for namespace `drumbeat` (a test checks the
//! README holds them verbatim), and the least-privilege test runs the binaries under exactly
//! these for its own namespace.

use std::process::Command;

use crate::{AMQP_URL, REDIS_URL};

/// RabbitMQ permissions on vhost `/`: configure, write, read (regular expressions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitPerms {
    pub configure: String,
    pub write: String,
    pub read: String,
}

fn re(ns: &str) -> String {
    ns.replace('.', "\\.")
}

/// The beat: declares the exchanges, work queues, delay tiers and DLQs of its schedules'
/// queues (declaring a queue with a dead-letter exchange needs read on the queue and write on
/// that exchange), publishes to `{ns}.tasks`, and its `/api/v1` and `ctl` verbs read, replay
/// and purge the DLQs.
pub fn beat_rabbit(ns: &str) -> RabbitPerms {
    let n = re(ns);
    RabbitPerms {
        configure: format!("^{n}\\."),
        write: format!("^{n}\\."),
        read: format!("^{n}\\."),
    }
}

/// The worker: as the beat, plus writing to the default exchange (`amq.default`), which
/// addresses delay tiers and Celery reply queues by name.
pub fn worker_rabbit(ns: &str) -> RabbitPerms {
    let n = re(ns);
    RabbitPerms {
        configure: format!("^{n}\\."),
        write: format!("^({n}\\..*|amq\\.default)$"),
        read: format!("^{n}\\."),
    }
}

/// Commands every drumbeat process sends: scripts (EVALSHA, loading on NOSCRIPT) and what the
/// scripts call, plus the plain commands of the control store, presence and audit log.
const COMMON_COMMANDS: &str = "+ping +get +set +mget +del +exists +incr +pexpire +pttl +expire \
+hset +hget +hgetall +hdel +hincrby +xadd +xrevrange +evalsha +eval +script|load +wait +role";

/// Redis ACL rules of the beat (after `ACL SETUSER <name> on ><password>`): the lease, cursors,
/// control keys, schedule stats, presence and audit log in `{ns}`, and the `starts` counter of
/// a task id, which an API replay resets; MULTI/EXEC for the control store's snapshot; v1's
/// `ns:beat:*` keys and SCAN for the one-time migration to the hash-tagged layout (§13).
pub fn beat_redis(ns: &str) -> String {
    format!(
        "resetkeys ~{{{ns}}}:beat:* ~{{{ns}}}:ctl:* ~{{{ns}}}:sched:* ~{{{ns}}}:presence:* \
         ~{{{ns}}}:audit ~{ns}:task:*:starts ~{ns}:beat:* resetchannels -@all {COMMON_COMMANDS} \
         +multi +exec +scan"
    )
}

/// Redis ACL rules of the worker: every dedup key of a task id (`claim`, `done`, `starts`),
/// schedule outcome reports, presence, the overlap markers (docs/design.md §15) and the audit
/// log its `dlq` verbs append to.
pub fn worker_redis(ns: &str) -> String {
    format!(
        "resetkeys ~{ns}:task:* ~{{{ns}}}:sched:* ~{{{ns}}}:presence:* ~{{{ns}}}:running:* \
         ~{{{ns}}}:waiting:* ~{{{ns}}}:audit resetchannels -@all {COMMON_COMMANDS}"
    )
}

/// The `rabbitmqctl set_permissions` line for `user` (shell-quoted as the README shows it).
pub fn rabbit_command(user: &str, p: &RabbitPerms) -> String {
    format!(
        "rabbitmqctl set_permissions -p / {user} '{}' '{}' '{}'",
        p.configure, p.write, p.read
    )
}

/// The `ACL SETUSER` line for `user` with password placeholder `pw`.
pub fn redis_command(user: &str, pw: &str, rules: &str) -> String {
    format!("ACL SETUSER {user} on >{pw} {rules}")
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{program} {}: {text}", args.join(" ")))
    }
}

/// A RabbitMQ user on the shared broker, deleted on drop.
pub struct RabbitUser {
    pub name: String,
    pub password: String,
}

impl RabbitUser {
    /// Creates `name` with `password` and `perms` on vhost `/` (none when `perms` is None).
    pub fn create(name: &str, password: &str, perms: Option<&RabbitPerms>) -> Self {
        let _ = run("rabbitmqctl", &["delete_user", name]);
        run("rabbitmqctl", &["add_user", name, password]).unwrap();
        let user = Self {
            name: name.to_string(),
            password: password.to_string(),
        };
        if let Some(p) = perms {
            run(
                "rabbitmqctl",
                &[
                    "set_permissions",
                    "-p",
                    "/",
                    name,
                    &p.configure,
                    &p.write,
                    &p.read,
                ],
            )
            .unwrap();
        }
        user
    }

    /// The broker URL logging in as this user.
    pub fn url(&self) -> String {
        AMQP_URL.replace("guest:guest", &format!("{}:{}", self.name, self.password))
    }
}

impl Drop for RabbitUser {
    fn drop(&mut self) {
        if let Err(e) = run("rabbitmqctl", &["delete_user", &self.name]) {
            eprintln!("could not delete RabbitMQ user {}: {e}", self.name);
        }
    }
}

/// A Redis ACL user on the shared Redis, deleted on drop.
pub struct RedisUser {
    pub name: String,
    pub password: String,
}

impl RedisUser {
    /// `ACL SETUSER name reset on >password <rules>`.
    pub fn create(name: &str, password: &str, rules: &str) -> Self {
        let pw = format!(">{password}");
        let mut args = vec!["ACL", "SETUSER", name, "reset", "on", pw.as_str()];
        args.extend(rules.split_whitespace());
        let out = run("redis-cli", &args).unwrap();
        assert!(out.trim() == "OK", "ACL SETUSER {name}: {out}");
        Self {
            name: name.to_string(),
            password: password.to_string(),
        }
    }

    /// The Redis URL logging in as this user.
    pub fn url(&self) -> String {
        REDIS_URL.replace(
            "redis://",
            &format!("redis://{}:{}@", self.name, self.password),
        )
    }
}

impl Drop for RedisUser {
    fn drop(&mut self) {
        if let Err(e) = run("redis-cli", &["ACL", "DELUSER", &self.name]) {
            eprintln!("could not delete Redis user {}: {e}", self.name);
        }
    }
}

/// A user name unique to this test run: `{prefix}-{8 hex}`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}
