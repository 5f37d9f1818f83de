//! What runs beside a migration message while the server works on it.
//!
//! - Ctrl-C or SIGTERM sends PostgreSQL's cancel request, so the server stops too (without it,
//!   the server would go on committing migrations after the client is gone). If no answer comes
//!   within a few seconds, or a second signal arrives, the process exits 130 saying that
//!   `dbmigrate status` shows what committed.
//! - Once the message has run long enough to be waiting for a lock, a second session reads who
//!   blocks it (`pg_blocking_pids`). That list can only be seen during the wait: once
//!   `lock_timeout` fires it is empty. The batch's own connection sends nothing more, so the
//!   batch keeps its round trips; a message that ends within half the lock timeout never opens the second session.

use dbtools::contract::Profile;
use dbtools::interrupt::Sigint;
use dbtools::{cli, pg};
use postgres::SimpleQueryMessage;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const TOOL: &str = "dbmigrate";
/// How often the watcher wakes to look for a signal.
const TICK: Duration = Duration::from_millis(20);
/// How long a cancelled message may take to answer before the process exits anyway.
const CANCEL_GRACE: Duration = Duration::from_secs(5);
/// How long the watching session may take to connect.
const OBSERVER_CONNECT: Duration = Duration::from_secs(3);

/// Watches the messages of one run.
pub(crate) struct Watch<'a> {
    pub profile: &'a Profile,
    pub signals: &'a Sigint,
    /// The batch session's backend pid, once the lock message has read it.
    pub backend_pid: Option<i32>,
    /// How often to look for blockers once a message has run twice as long: a message
    /// that ends before that (almost all do) never opens the second session.
    pub observe_every: Duration,
    /// The second session, once opened: kept for the run's later messages (a retry looks
    /// at once instead of connecting again).
    pub observer: std::sync::Mutex<Option<pg::Client>>,
}

/// What the watcher saw while a message ran.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// The sessions blocking the message when last looked at, described; `None` when none
    /// were seen (too fast to look, or nothing blocked it).
    pub blockers: Option<String>,
    /// Why blockers could not be looked for, when they could not.
    pub unseen: Option<String>,
    /// The cancel request was sent because a signal came.
    pub cancelled: bool,
}

impl<'a> Watch<'a> {
    /// A watch for the run's session, before its pid is known.
    pub(crate) fn new(
        profile: &'a Profile,
        signals: &'a Sigint,
        observe_every: Duration,
    ) -> Watch<'a> {
        Watch {
            profile,
            signals,
            backend_pid: None,
            observe_every,
            observer: Default::default(),
        }
    }

    /// Runs one simple-query message under watch.
    pub(crate) fn query(
        &self,
        client: &mut pg::Client,
        text: &str,
    ) -> (Result<Vec<SimpleQueryMessage>, postgres::Error>, Seen) {
        let token = client.cancel_token();
        let (done, finished) = mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let watcher = scope.spawn(move || self.watch(&token, &finished));
            let answer = client.simple_query(text);
            drop(done);
            let seen = watcher.join().unwrap_or_default();
            (answer, seen)
        })
    }

    fn watch(&self, token: &postgres::CancelToken, finished: &Receiver<()>) -> Seen {
        let mut observer = self.observer.lock().ok().and_then(|mut kept| kept.take());
        let seen = self.watch_with(token, finished, &mut observer);
        if let (Some(client), Ok(mut kept)) = (observer, self.observer.lock()) {
            *kept = Some(client);
        }
        seen
    }

    fn watch_with(
        &self,
        token: &postgres::CancelToken,
        finished: &Receiver<()>,
        observer: &mut Option<pg::Client>,
    ) -> Seen {
        let mut seen = Seen::default();
        let mut cancelled_at: Option<Instant> = None;
        let mut next_look = Instant::now() + 2 * self.observe_every;
        loop {
            match finished.recv_timeout(TICK) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return seen,
            }
            if let Some(at) = cancelled_at {
                if self.signals.count() > 1 || at.elapsed() > CANCEL_GRACE {
                    cli::note(
                        TOOL,
                        "no answer to the cancel request (or a second signal): exiting now; `dbmigrate status` shows which migrations committed",
                    );
                    std::process::exit(130);
                }
                continue;
            }
            if self.signals.caught() {
                cli::note(
                    TOOL,
                    "interrupted: asking the server to cancel the running migration",
                );
                if let Err(e) = pg::cancel(&self.profile.conn, token) {
                    cli::note(TOOL, e.message());
                }
                seen.cancelled = true;
                cancelled_at = Some(Instant::now());
                continue;
            }
            let Some(pid) = self.backend_pid else {
                continue;
            };

            if Instant::now() < next_look || seen.unseen.is_some() {
                continue;
            }
            next_look = Instant::now() + self.observe_every;
            if observer.is_none() {
                match dbtools::resolve::connect(
                    self.profile,
                    "dbmigrate (looking for blockers)",
                    OBSERVER_CONNECT,
                ) {
                    Ok(client) => *observer = Some(client),
                    Err(e) => {
                        seen.unseen = Some(format!(
                            "a second session to look for it could not connect: {}",
                            e.message()
                        ));
                        continue;
                    }
                }
            }
            if let Some(client) = observer.as_mut() {
                match client.simple_query(&blockers_sql(pid)) {
                    Ok(messages) => {
                        let rows = pg::result_sets(&messages).pop().unwrap_or_default();
                        if let Some(found) = describe(&rows) {
                            seen.blockers = Some(found);
                        }
                    }
                    Err(e) => {
                        seen.unseen = Some(format!(
                            "reading pg_stat_activity failed: {}",
                            pg::error_chain(&e)
                        ))
                    }
                }
            }
        }
    }
}

/// The sessions `pid` waits for, as pg_stat_activity shows them to this role: without
/// `pg_read_all_stats` another role's state and times are NULL. The query text is never read:
/// it may hold data or a password.
fn blockers_sql(pid: i32) -> String {
    format!(
        "SELECT a.pid::text, coalesce(a.usename, '?'), coalesce(nullif(a.application_name, ''), '-'), a.state, \
         to_char(coalesce(a.state_change, a.query_start) AT TIME ZONE 'UTC', 'HH24:MI:SS'), \
         to_char(a.xact_start AT TIME ZONE 'UTC', 'HH24:MI:SS'), current_user \
         FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids({pid})) ORDER BY a.pid"
    )
}

/// One phrase per blocking session: `pid 4242 (role report, application psql, idle in
/// transaction since 12:00:01 UTC, transaction started 11:59:58 UTC)`.
fn describe(rows: &[pg::TextRow]) -> Option<String> {
    let phrases: Vec<String> = rows
        .iter()
        .map(|row| {
            let get = |i: usize| row.get(i).cloned().flatten();
            let mut phrase = format!(
                "pid {} (role {}, application {}",
                get(0).unwrap_or_default(),
                get(1).unwrap_or_default(),
                get(2).unwrap_or_default()
            );
            match get(3) {
                Some(state) => {
                    phrase.push_str(&format!(", {state}"));
                    if let Some(since) = get(4) {
                        phrase.push_str(&format!(" since {since} UTC"));
                    }
                    if let Some(started) = get(5) {
                        phrase.push_str(&format!(", transaction started {started} UTC"));
                    }
                }
                None => phrase.push_str(&format!(
                    "; its state is hidden from role {}: grant it pg_read_all_stats to see it",
                    get(6).unwrap_or_default()
                )),
            }
            phrase + ")"
        })
        .collect();
    (!phrases.is_empty()).then(|| phrases.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocker_is_described_with_what_this_role_may_see() {
        let row = |state: Option<&str>| -> pg::TextRow {
            [
                Some("4242"),
                Some("report"),
                Some("psql"),
                state,
                state.map(|_| "12:00:01"),
                state.map(|_| "11:59:58"),
                Some("app"),
            ]
            .into_iter()
            .map(|cell| cell.map(str::to_string))
            .collect()
        };
        assert_eq!(
            describe(&[row(Some("idle in transaction"))]).unwrap(),
            "pid 4242 (role report, application psql, idle in transaction since 12:00:01 UTC, transaction started 11:59:58 UTC)"
        );
        assert_eq!(
            describe(&[row(None)]).unwrap(),
            "pid 4242 (role report, application psql; its state is hidden from role app: grant it pg_read_all_stats to see it)"
        );
        assert_eq!(describe(&[]), None);
    }
}
