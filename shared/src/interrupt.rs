//! Ctrl-C (and SIGTERM, what `kill`, `timeout` and CI runners send) as a value. While a
//! [`Sigint`] lives, either signal raises a counter instead of killing the process, so a long
//! wait can stop where it stands and say what it saw and what was done, and a running
//! statement can be cancelled on the server first; dropping it restores what was there
//! before, so a later signal kills as usual. On Windows, Ctrl-C and Ctrl-Break are caught the
//! same way (a console control handler); `taskkill /F` and closing the console end the process,
//! as `kill -9` does on Unix.

use std::sync::atomic::{AtomicUsize, Ordering};

static CAUGHT: AtomicUsize = AtomicUsize::new(0);

/// SIGINT and SIGTERM caught for as long as this lives.
pub struct Sigint {
    #[cfg(unix)]
    previous: [(libc::c_int, libc::sigaction); 2],
}

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    raise();
}

/// Counts one interrupt (called from the signal or console handler: only an atomic add).
pub(crate) fn raise() {
    CAUGHT.fetch_add(1, Ordering::SeqCst);
}

impl Sigint {
    #[cfg(unix)]
    #[allow(unsafe_code)]
    pub fn catch() -> Sigint {
        CAUGHT.store(0, Ordering::SeqCst);
        let install = |signal: libc::c_int| {
            // SAFETY: plain sigaction calls; the handler only adds to an atomic, which is
            // async-signal-safe.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                libc::sigemptyset(&mut action.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                libc::sigaction(signal, &action, &mut previous);
                (signal, previous)
            }
        };
        Sigint {
            previous: [install(libc::SIGINT), install(libc::SIGTERM)],
        }
    }

    /// On Windows: Ctrl-C and Ctrl-Break, through a console control handler.
    #[cfg(windows)]
    pub fn catch() -> Sigint {
        CAUGHT.store(0, Ordering::SeqCst);
        crate::windows::catch_ctrl();
        Sigint {}
    }

    /// Whether a signal came.
    pub fn caught(&self) -> bool {
        self.count() > 0
    }

    /// How many signals came (a second one means "stop now, do not clean up").
    pub fn count(&self) -> usize {
        CAUGHT.load(Ordering::SeqCst)
    }
}

impl Drop for Sigint {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        #[cfg(windows)]
        crate::windows::release_ctrl();
        #[cfg(unix)]
        for (signal, previous) in &self.previous {
            // SAFETY: restores the disposition saved by `catch`.
            unsafe {
                libc::sigaction(*signal, previous, std::ptr::null_mut());
            }
        }
    }
}
