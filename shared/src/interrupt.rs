//! Ctrl-C as a value. While a [`Sigint`] lives, SIGINT sets a flag instead of killing the
//! process, so a long wait can stop where it stands and say what it saw and what was done;
//! dropping it restores what was there before, so a later Ctrl-C kills as usual.

use std::sync::atomic::{AtomicBool, Ordering};

static CAUGHT: AtomicBool = AtomicBool::new(false);

/// SIGINT caught for as long as this lives.
pub struct Sigint {
    #[cfg(unix)]
    previous: libc::sigaction,
}

#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    CAUGHT.store(true, Ordering::SeqCst);
}

impl Sigint {
    #[cfg(unix)]
    #[allow(unsafe_code)]
    pub fn catch() -> Sigint {
        CAUGHT.store(false, Ordering::SeqCst);
        // SAFETY: plain sigaction calls; the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGINT, &action, &mut previous);
            Sigint { previous }
        }
    }

    /// Elsewhere Ctrl-C keeps its default; the flag never rises.
    #[cfg(not(unix))]
    pub fn catch() -> Sigint {
        CAUGHT.store(false, Ordering::SeqCst);
        Sigint {}
    }

    pub fn caught(&self) -> bool {
        CAUGHT.load(Ordering::SeqCst)
    }
}

impl Drop for Sigint {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: restores the disposition saved by `catch`.
        unsafe {
            libc::sigaction(libc::SIGINT, &self.previous, std::ptr::null_mut());
        }
    }
}
