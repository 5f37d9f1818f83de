//! Parsing a block a chunk at a time, on worker threads, handing the trees over in order.
//!
//! A big seed is cut after a `;` outside parentheses every 64 KiB or so ([`chunk_ends`]), so
//! one parse covers each statement without holding the tree of 40,000 statements at once.
//! Parsing (PostgreSQL's grammar, then libpg_query's protobuf round trip) is more than half the
//! lint's time and depends on nothing but the chunk's text; judging depends on what earlier
//! statements did (a table the run created, a function it defined), so it stays on the calling
//! thread, in order. libpg_query keeps the parser's state per thread (`__thread`), so chunks
//! parse side by side; the number in flight is bounded, so memory stays flat.

use pg_query::protobuf::{ScanToken, Token};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

/// About how much text one parse covers.
const CHUNK: usize = 64 * 1024;

/// A worker's stack: a main thread's 8 MiB, twice.
const WORKER_STACK: usize = 16 << 20;

/// Where to cut a block for parsing: after a `;` outside parentheses, every [`CHUNK`] bytes or
/// so. The parser may disagree with a cut (inside a `BEGIN ATOMIC` body); that chunk then does
/// not parse, and the caller parses the rest whole.
pub(super) fn chunk_ends(tokens: &[ScanToken], len: usize) -> Vec<usize> {
    let mut ends = Vec::new();
    let (mut depth, mut from) = (0i32, 0usize);
    for token in tokens {
        match token.token {
            t if t == Token::Ascii40 as i32 => depth += 1,
            t if t == Token::Ascii41 as i32 => depth -= 1,
            t if t == Token::Ascii59 as i32 && depth == 0 => {
                let end = token.end.max(0) as usize;
                if end - from >= CHUNK {
                    ends.push(end);
                    from = end;
                }
            }
            _ => {}
        }
    }
    if ends.last() != Some(&len) {
        ends.push(len);
    }
    ends
}

/// One chunk's parse: the tree, or the parser's error.
pub(super) type Parsed = pg_query::Result<pg_query::ParseResult>;

/// Parses `text[ends[i-1]..ends[i]]` for each cut and hands each result, with where its chunk
/// starts, to `judge` in order on this thread; `judge` breaks to stop (the rest is not
/// parsed). A single chunk is parsed right here. More are parsed by one worker fewer than the
/// cores (at least one) while this thread judges; when the next tree is not ready yet, this
/// thread parses a chunk too rather than wait (simple statements judge faster than they parse).
/// Judged trees go back to the workers to be freed.
pub(super) fn parse_in_order(
    text: &str,
    ends: &[usize],
    mut judge: impl FnMut(usize, &Parsed) -> ControlFlow<()>,
) {
    let starts = || std::iter::once(0).chain(ends.iter().copied());
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1)
        .min(ends.len());
    if ends.len() < 2 {
        for (start, &end) in starts().zip(ends) {
            if judge(start, &pg_query::parse(&text[start..end], 0)).is_break() {
                return;
            }
        }
        return;
    }
    let next = AtomicUsize::new(0);
    let take =
        |next: &AtomicUsize| Some(next.fetch_add(1, Ordering::Relaxed)).filter(|&i| i < ends.len());
    let parse = |index: usize| {
        let start = if index == 0 { 0 } else { ends[index - 1] };
        pg_query::parse(&text[start..ends[index]], 0)
    };
    // Judged trees go back to be freed by a worker, between parses: freeing a tree is
    // a tenth of the work, and memory is cheapest freed by the thread that took it.
    let (trash, judged) = mpsc::channel::<Parsed>();
    let judged = Mutex::new(judged);
    std::thread::scope(|scope| {
        // Bounded: a worker waits once this many trees are ahead of the judge.
        let (sender, receiver) = mpsc::sync_channel::<(usize, Parsed)>(workers * 2);
        for _ in 0..workers {
            let (sender, next, take, parse) = (sender.clone(), &next, &take, &parse);
            let judged = &judged;
            let work = move || {
                while let Some(index) = take(next) {
                    if let Ok(judged) = judged.try_lock() {
                        judged.try_iter().for_each(drop);
                    }
                    // The judge hung up: it has what it needs.
                    if sender.send((index, parse(index))).is_err() {
                        return;
                    }
                }
            };
            // Decoding a deep tree recurses with big frames (pg_query allows 100 levels):
            // a worker gets a main thread's stack and more. One that cannot start leaves its
            // share to this thread, which parses whatever no worker took.
            let _ = std::thread::Builder::new()
                .stack_size(WORKER_STACK)
                .spawn_scoped(scope, work);
        }
        drop(sender);
        let mut waiting: BTreeMap<usize, Parsed> = BTreeMap::new();
        for (index, start) in starts().take(ends.len()).enumerate() {
            let parsed = loop {
                if let Some(parsed) = waiting.remove(&index) {
                    break parsed;
                }
                let (got, parsed) = match receiver.try_recv() {
                    Ok(done) => done,
                    // Nothing ready: parse the next chunk here rather than wait, when one is
                    // left (the judge is the faster half when statements are simple).
                    Err(nothing) => match take(&next) {
                        Some(mine) => (mine, parse(mine)),
                        None if nothing == mpsc::TryRecvError::Empty => {
                            receiver.recv().expect("a worker holds the chunk")
                        }
                        None => unreachable!("chunk {index} was taken by no one"),
                    },
                };
                if got == index {
                    break parsed;
                }
                waiting.insert(got, parsed);
            };
            let verdict = judge(start, &parsed);
            // Sent only while some worker may still take it; the rest is freed at the end.
            let _ = trash.send(parsed);
            if verdict.is_break() {
                // Stop handing out chunks; a worker blocked on a full channel wakes with
                // an error once the receiver goes.
                next.store(ends.len(), Ordering::Relaxed);
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks_of(sql: &str) -> Vec<(usize, usize)> {
        let tokens = pg_query::scan_tokens(sql).unwrap();
        let ends = chunk_ends(&tokens, sql.len());
        let mut seen = Vec::new();
        parse_in_order(sql, &ends, |start, parsed| {
            seen.push((start, parsed.as_ref().unwrap().protobuf.stmts.len()));
            ControlFlow::Continue(())
        });
        seen
    }

    #[test]
    fn every_statement_is_parsed_once_in_order() {
        let sql = "select 1;\n".repeat(40_000);
        let seen = chunks_of(&sql);
        assert!(seen.len() > 5, "{} chunks", seen.len());
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        assert_eq!(seen.iter().map(|(_, n)| n).sum::<usize>(), 40_000);
        assert_eq!(chunks_of("select 1; select 2"), [(0, 2)]);
    }

    #[test]
    fn a_break_stops_the_parse_early() {
        let sql = "select 1;\n".repeat(100_000);
        let tokens = pg_query::scan_tokens(&sql).unwrap();
        let ends = chunk_ends(&tokens, sql.len());
        let mut judged = 0;
        parse_in_order(&sql, &ends, |_, _| {
            judged += 1;
            match judged {
                2 => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        });
        assert_eq!(judged, 2);
    }
}
