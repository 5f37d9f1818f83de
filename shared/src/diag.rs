//! Diagnostics: one line on stderr prefixed with the running tool's name, and a progress line
//! for a wait that lasts. The bottom layer: every module may say something, and this one
//! imports nothing of ours.

use std::io::Write;
use std::sync::OnceLock;

static TOOL: OnceLock<&'static str> = OnceLock::new();

/// Records the running tool's name (its `main` does, once).
pub(crate) fn set_tool(tool: &'static str) {
    let _ = TOOL.set(tool);
}

/// The running tool's name, for modules that speak without being told it.
pub(crate) fn tool() -> &'static str {
    TOOL.get().copied().unwrap_or("dbtools")
}

/// One diagnostic line on stderr, prefixed with the tool's name.
pub fn note(tool: &str, text: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "{tool}: {text}");
}

/// A progress line printed only when the wait it covers lasts longer than `after` — a wait
/// the user would otherwise sit through in silence (a lock held by another run); dropped
/// before then, it prints nothing.
pub struct NoteAfter {
    done: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl NoteAfter {
    pub fn start(tool: &'static str, after: std::time::Duration, message: String) -> NoteAfter {
        let done = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let watched = done.clone();
        std::thread::spawn(move || {
            let (finished, signal) = &*watched;
            let guard = finished.lock().unwrap_or_else(|e| e.into_inner());
            let (guard, _) = signal
                .wait_timeout_while(guard, after, |finished| !*finished)
                .unwrap_or_else(|e| e.into_inner());
            if !*guard {
                note(tool, &message);
            }
        });
        NoteAfter { done }
    }
}

impl Drop for NoteAfter {
    fn drop(&mut self) {
        let (finished, signal) = &*self.done;
        *finished.lock().unwrap_or_else(|e| e.into_inner()) = true;
        signal.notify_all();
    }
}
