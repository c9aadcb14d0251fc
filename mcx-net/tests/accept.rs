//! The accept loop with an injected sequence of accept results: errors
//! never end it, resource errors back off (doubling, capped, reset after a
//! success), and a burst is logged once rather than per error.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use mcx_net::{AcceptBackoff, accept_loop};

/// Out of file descriptors (EMFILE).
fn emfile() -> io::Error {
    io::Error::from_raw_os_error(24)
}

/// Runs the loop over `script`; returns the accepted values and the waits.
fn run(script: Vec<io::Result<u32>>, stop_after: usize) -> (Vec<u32>, Vec<Duration>, u64) {
    let script = std::cell::RefCell::new(VecDeque::from(script));
    let sleeps = std::cell::RefCell::new(Vec::new());
    let mut accepted = Vec::new();
    let errors = AtomicU64::new(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(accept_loop(
        "test",
        AcceptBackoff::default(),
        &errors,
        || {
            let next = script
                .borrow_mut()
                .pop_front()
                .expect("the loop asked for more than the script");
            async move { next }
        },
        |d| {
            sleeps.borrow_mut().push(d);
            async {}
        },
        |conn| {
            accepted.push(conn);
            let flow = if accepted.len() == stop_after {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            };
            async move { flow }
        },
    ));
    (
        accepted,
        sleeps.into_inner(),
        errors.load(Ordering::Relaxed),
    )
}

#[test]
fn errors_back_off_and_accepting_goes_on() {
    a_burst_of_errors_is_logged_once();

    let mut script: Vec<io::Result<u32>> = (0..7).map(|_| Err(emfile())).collect();
    script.push(Ok(1));
    // A connection reset before it was accepted is not a reason to wait.
    script.push(Err(io::ErrorKind::ConnectionAborted.into()));
    script.push(Ok(2));
    script.push(Err(emfile()));
    script.push(Err(emfile()));
    script.push(Ok(3));
    let (accepted, sleeps, errors) = run(script, 3);
    assert_eq!(accepted, [1, 2, 3]);
    assert_eq!(errors, 10);
    let ms: Vec<u128> = sleeps.iter().map(Duration::as_millis).collect();
    // Doubling from 50 ms, capped at 1 s; a success resets it.
    assert_eq!(ms, [50, 100, 200, 400, 800, 1000, 1000, 50, 100]);
}

/// Counts warn-level events.
struct CountWarnings(Arc<AtomicUsize>);

impl tracing::Subscriber for CountWarnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        if *e.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Not a test of its own: tracing caches per call site whether anyone
/// listens, and a test running beside this one on another thread (with no
/// subscriber) could make the call sites silent for this one.
fn a_burst_of_errors_is_logged_once() {
    let warnings = Arc::new(AtomicUsize::new(0));
    let mut script: Vec<io::Result<u32>> = (0..1000).map(|_| Err(emfile())).collect();
    script.push(Ok(1));
    script.extend((0..1000).map(|_| Err(emfile())));
    script.push(Ok(2));
    let (accepted, sleeps, errors) =
        tracing::subscriber::with_default(CountWarnings(warnings.clone()), || run(script, 2));
    assert_eq!(accepted, [1, 2]);
    assert_eq!(errors, 2000);
    assert_eq!(sleeps.len(), 2000);
    assert_eq!(warnings.load(Ordering::Relaxed), 2, "one warning per burst");
}
