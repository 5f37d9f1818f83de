//! One env's share of a command that may cover several envs at once: its name on every
//! progress line, how often it polls, the Ctrl-C the command caught, and the list of what it
//! has done so far (printed as it happens, returned at the end, named in a failure). Waits
//! poll here; `each_env` runs one closure per env concurrently and reports every env's outcome.

use dbtools::interrupt::Sigint;
use dbtools::{cli, Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOOL: &str = "rdsprov";

/// Ctrl-C (or SIGTERM) while a command changes AWS: the first stops every env at its next step
/// (a wait at once), and says so at once; a second stops the process there and then — what AWS
/// was already asked to do goes on there, and the same command run again continues.
pub(crate) struct Interrupt {
    sigint: Arc<Sigint>,
    done: Arc<AtomicBool>,
}

impl Interrupt {
    pub(crate) fn catch() -> Interrupt {
        let sigint = Arc::new(Sigint::catch());
        let done = Arc::new(AtomicBool::new(false));
        let (watched, finished) = (Arc::clone(&sigint), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut said = false;
            while !finished.load(Ordering::SeqCst) {
                match watched.count() {
                    0 => {}
                    1 if !said => {
                        cli::note(
                            TOOL,
                            "interrupted: each env stops after its current AWS call (Ctrl-C again to stop at once)",
                        );
                        said = true;
                    }
                    1 => {}
                    _ => {
                        cli::note(
                            TOOL,
                            "interrupted again: stopping now; what AWS was already asked to do goes on there — run the same command again to continue",
                        );
                        std::process::exit(130);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Interrupt { sigint, done }
    }

    pub(crate) fn sigint(&self) -> &Sigint {
        &self.sigint
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

pub(crate) struct Progress<'a> {
    pub env: &'a str,
    pub poll: Duration,
    interrupt: &'a Sigint,
    done: Vec<String>,
}

impl<'a> Progress<'a> {
    pub(crate) fn new(env: &'a str, poll: Duration, interrupt: &'a Sigint) -> Progress<'a> {
        Progress {
            env,
            poll,
            interrupt,
            done: Vec::new(),
        }
    }

    /// A progress line on stderr, naming the env.
    pub(crate) fn note(&self, text: impl std::fmt::Display) {
        cli::note(TOOL, format!("env {}: {text}", self.env));
    }

    /// Something was done: said now, listed in the result.
    pub(crate) fn did(&mut self, text: String) {
        self.note(&text);
        self.done.push(text);
    }

    pub(crate) fn into_done(self) -> Vec<String> {
        self.done
    }

    /// Stops before the next step once Ctrl-C came: what was done stays, a rerun continues.
    pub(crate) fn check_interrupt(&self) -> Result<()> {
        if self.interrupt.caught() {
            return Err(Error::Interrupted(
                "interrupted (Ctrl-C) before the next step; nothing was undone: run the same command again to continue".into(),
            ));
        }
        Ok(())
    }

    /// `error`, with what this env had already done when it came.
    pub(crate) fn failure(&self, error: Error, verb: &str) -> Error {
        if self.done.is_empty() {
            return error;
        }
        let message = format!(
            "env {}: {} — already done: {}; rerun `rdsprov {verb}` to complete the rest",
            self.env,
            error.message(),
            self.done.join("; ")
        );
        error.with_message(message)
    }

    /// Polls `check` every `poll` until it yields a value; `check` also returns the current
    /// status, shown after each miss with the elapsed time. Ctrl-C (during a poll or between
    /// polls) stops the wait at once with exit 130 and the last status seen; nothing is undone,
    /// and the same command run again picks up where this one stood.
    pub(crate) fn wait_for<T, F, Fut>(
        &self,
        aws: &crate::aws::Aws,
        what: &str,
        mut check: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(Option<T>, String)>>,
    {
        let started = Instant::now();
        let elapsed = || {
            let seconds = started.elapsed().as_secs();
            format!("{}m {:02}s", seconds / 60, seconds % 60)
        };
        let mut last_status = String::from("not read yet");
        let interrupted = |status: &str| {
            Error::Interrupted(format!(
                "interrupted while waiting for {what} (last status: {status}, after {}); nothing was undone: run the same command again to continue",
                elapsed()
            ))
        };
        let ctrl_c = || async {
            while !self.interrupt.caught() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        aws.block_on(async {
            loop {
                let polled = tokio::select! {
                    polled = check() => polled,
                    () = ctrl_c() => return Err(interrupted(&last_status)),
                };
                let (done, status) = polled?;
                if let Some(value) = done {
                    return Ok(value);
                }
                self.note(format!("waiting for {what}: {status} ({})", elapsed()));
                last_status = status;
                tokio::select! {
                    () = tokio::time::sleep(self.poll) => {}
                    () = ctrl_c() => return Err(interrupted(&last_status)),
                }
            }
        })
    }
}

/// Runs `work` for every env at once, each on its own thread, and returns each env's outcome
/// in the order given. One env failing does not stop the others: each finishes, or stops at
/// its next step after Ctrl-C.
pub(crate) fn each_env<S, T, F>(
    items: &[S],
    env_of: fn(&S) -> String,
    work: F,
) -> Vec<(String, Result<T>)>
where
    S: Sync,
    T: Send,
    F: Fn(&S) -> Result<T> + Sync,
{
    if items.len() == 1 {
        return vec![(env_of(&items[0]), work(&items[0]))];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .iter()
            .map(|item| (env_of(item), scope.spawn(|| work(item))))
            .collect();
        handles
            .into_iter()
            .map(|(env, handle)| {
                let outcome = handle.join().unwrap_or_else(|_| {
                    Err(Error::Failed(format!(
                        "env {env}: rdsprov stopped unexpectedly (a bug: please report it)"
                    )))
                });
                (env, outcome)
            })
            .collect()
    })
}

/// Every env's value, or one error saying how each env ended: each failure in full, and the
/// envs that completed. Ctrl-C makes the whole an interruption (exit 130); otherwise the first
/// failure's kind decides the exit status.
pub(crate) fn all_envs<T>(outcomes: Vec<(String, Result<T>)>) -> Result<Vec<T>> {
    if outcomes.iter().all(|(_, outcome)| outcome.is_ok()) {
        return Ok(outcomes.into_iter().filter_map(|(_, o)| o.ok()).collect());
    }
    let mut failures: Vec<(String, Error)> = Vec::new();
    let mut completed = Vec::new();
    for (env, outcome) in outcomes {
        match outcome {
            Ok(_) => completed.push(format!("env {env}")),
            Err(error) => failures.push((env, error)),
        }
    }
    if failures.len() == 1 && completed.is_empty() {
        return Err(failures.remove(0).1);
    }
    let kind = failures
        .iter()
        .find(|(_, e)| matches!(e, Error::Interrupted(_)))
        .unwrap_or(&failures[0]);
    let mut message = failures
        .iter()
        .map(|(env, error)| {
            let text = error.message();
            if text.starts_with(&format!("env {env}:")) {
                text.to_string()
            } else {
                format!("env {env}: {text}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    if !completed.is_empty() {
        message.push_str(&format!("; completed: {}", completed.join(", ")));
    }
    Err(kind.1.with_message(message))
}
