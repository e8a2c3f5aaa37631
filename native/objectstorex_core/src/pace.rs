//! When a `get_many` or `put_many` producer holds finished objects back to send more of them in
//! one message.
//!
//! Each message wakes a scheduler of the VM, which, once out of work, spins before it sleeps: at
//! a thousand small objects a second that spinning costs the VM more than the requests do.
//! Waiting briefly for the next results sends them together. The wait pays only when results
//! come faster than one per half of it, and it costs throughput, since a held result starts
//! nothing in its place: so it never exceeds a sixteenth of the time an object takes.
//! Objects the consumer pushed ahead of the in-flight limit change that: each finished object
//! starts a queued one in its place, so holding costs no throughput, only the held results'
//! latency, and a producer with a queue may wait longer (`hold_queued`).

use std::time::{Duration, Instant};

/// The longest a finished object waits for others to share its message (Tokio's timer, which
/// counts whole milliseconds, may add up to one).
pub const MAX_HOLD: Duration = Duration::from_millis(2);

/// The longest a finished object waits while queued objects take its place.
pub const MAX_QUEUED_HOLD: Duration = Duration::from_millis(20);

/// The pace at which a producer's objects finish, from the messages it has sent.
#[derive(Debug, Default)]
pub struct Pace {
    last_sent: Option<Instant>,
    /// Time between two finished objects, a moving average.
    gap: Option<Duration>,
}

impl Pace {
    pub fn new() -> Self {
        Self::default()
    }

    /// How long to wait for more results before sending the ones in hand, `running` objects
    /// being still in flight; `None` to send at once.
    pub fn hold(&self, running: usize) -> Option<Duration> {
        let gap = self.gap?;
        let hold = MAX_HOLD.min(self.took(running)? / 16);
        (gap.saturating_mul(2) < hold).then_some(hold)
    }

    /// As `hold`, while queued objects replace those that finish: a quarter of the time an
    /// object takes, in which about a quarter of those running finish (as many as a consumer
    /// pushes ahead), at most `MAX_QUEUED_HOLD`; `None` to send at once.
    pub fn hold_queued(&self, running: usize) -> Option<Duration> {
        let hold = MAX_QUEUED_HOLD.min(self.took(running)? / 4);
        (self.gap? < hold).then_some(hold)
    }

    /// Little's law: `running` in flight, one finishing every `gap`, so each takes about
    /// running x gap.
    fn took(&self, running: usize) -> Option<Duration> {
        let running = u32::try_from(running).unwrap_or(u32::MAX);
        Some(self.gap?.saturating_mul(running))
    }

    /// Records a message of `results` objects sent at `now`.
    pub fn sent(&mut self, now: Instant, results: usize) {
        if let (Some(last), Ok(n @ 1..)) = (self.last_sent, u32::try_from(results)) {
            let per = now.saturating_duration_since(last) / n;
            // Weighs the past by 7/8: a few messages follow a change of pace.
            self.gap = Some(self.gap.map_or(per, |gap| (gap * 7 + per) / 8));
        }
        self.last_sent = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// A pace whose messages came every `every`, each of `results` objects.
    fn steady(every: Duration, results: usize) -> Pace {
        let mut pace = Pace::new();
        let start = Instant::now();
        for i in 0..20 {
            pace.sent(start + every * i, results);
        }
        pace
    }

    #[test]
    fn sends_at_once_until_it_knows_the_pace() {
        let mut pace = Pace::new();
        assert_eq!(pace.hold(64), None);
        pace.sent(Instant::now(), 1);
        assert_eq!(pace.hold(64), None, "one message gives no interval");
    }

    #[test]
    fn holds_when_many_small_objects_finish_close_together() {
        // 1,400 objects a second, 64 in flight: each takes ~46 ms, a 2 ms wait is 1/23 of it.
        assert_eq!(steady(us(700), 1).hold(64), Some(MAX_HOLD));
        // 7,000 a second, 64 in flight: ~9 ms each, so the wait is 1/16 of that.
        assert_eq!(steady(us(140), 1).hold(64), Some(us(560)));
    }

    #[test]
    fn sends_at_once_when_the_wait_would_catch_little() {
        // 300 objects a second: a 2 ms wait would catch less than one more.
        assert_eq!(steady(us(3_300), 1).hold(64), None);
    }

    #[test]
    fn sends_at_once_when_few_run() {
        // However fast they finish, 16 in flight take less than 32 gaps: no wait is worth it.
        assert_eq!(steady(us(100), 1).hold(16), None);
        assert_eq!(steady(us(100), 1).hold(0), None);
        assert!(steady(us(100), 1).hold(40).is_some());
    }

    #[test]
    fn counts_every_object_of_a_message() {
        // One message every 4 ms carrying 8 objects is one object every 0.5 ms.
        assert_eq!(steady(ms(4), 8).hold(64), Some(MAX_HOLD));
        assert_eq!(steady(ms(4), 1).hold(64), None);
    }

    #[test]
    fn holds_longer_while_queued_objects_take_the_place_of_finished_ones() {
        // 330 objects a second, 16 in flight (1 MiB PUTs): ~48 ms each, a quarter of that.
        assert_eq!(steady(us(3_000), 1).hold_queued(16), Some(ms(12)));
        // 1,400 a second, 64 in flight (1 KiB PUTs): ~45 ms each, a quarter of that.
        assert_eq!(steady(us(700), 1).hold_queued(64), Some(us(11_200)));
        // 500 a second, 64 in flight: ~128 ms each, a quarter capped.
        assert_eq!(steady(us(2_000), 1).hold_queued(64), Some(MAX_QUEUED_HOLD));
        // Too few in flight for a second result to come within the wait.
        assert_eq!(steady(us(3_000), 1).hold_queued(4), None);
        assert_eq!(
            Pace::new().hold_queued(16),
            None,
            "not before the pace is known"
        );
    }

    #[test]
    fn follows_a_change_of_pace() {
        let mut pace = steady(us(500), 1);
        assert!(pace.hold(64).is_some());
        let start = Instant::now() + ms(100);
        for i in 0..30 {
            pace.sent(start + ms(10) * i, 1);
        }
        assert_eq!(
            pace.hold(64),
            None,
            "one object every 10 ms is not worth a wait"
        );
    }

    #[test]
    fn ignores_an_empty_message_and_a_clock_that_goes_back() {
        let mut pace = steady(us(500), 1);
        let before = pace.hold(64);
        pace.sent(Instant::now() + ms(50), 0);
        pace.sent(Instant::now(), 1);
        assert!(pace.hold(64).is_some());
        assert_eq!(before, Some(MAX_HOLD));
    }
}
