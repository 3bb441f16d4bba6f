//! Wakes the event loop at wall-clock times, and as soon as the clock is
//! set. A cron job's next run is a wall-clock time; the loop's epoll
//! timeout is monotonic and was computed before any clock step. So a
//! CLOCK_REALTIME timerfd is armed, absolute, at the earliest cron due
//! time, with TFD_TIMER_CANCEL_ON_SET: it fires at that wall time even
//! after a step, and at once when the clock is stepped (or the host
//! resumes from suspend), timerfd_create(2). Either way the supervisor gets
//! a tick and works its deadlines out again.

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::unistd::read;
use tracing::debug;

use super::{Kind, token};

pub struct WallClock {
    fd: TimerFd,
    /// What the timer is set to, so it is only set when that changes.
    armed: Option<jiff::Timestamp>,
}

impl WallClock {
    /// A disarmed timer watched by `epoll`; `None` if the kernel has none
    /// to give (then steps are noticed at the next monotonic deadline).
    pub fn new(epoll: &Epoll) -> Option<WallClock> {
        let fd = TimerFd::new(
            ClockId::CLOCK_REALTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(|e| debug!("no wall-clock timer: {e}"))
        .ok()?;
        epoll
            .add(
                &fd,
                EpollEvent::new(EpollFlags::EPOLLIN, token(Kind::WallClock, 0)),
            )
            .ok()?;
        Some(WallClock { fd, armed: None })
    }

    /// Fires at `at` (or never with `None`), and whenever the clock is set.
    pub fn arm(&mut self, at: Option<jiff::Timestamp>) {
        if at == self.armed {
            return;
        }
        self.armed = at;
        let result = match at {
            None => self.fd.unset(),
            Some(t) => {
                // A zero time would disarm it: the epoch itself is never due.
                let spec = TimeSpec::new(t.as_second().max(1), i64::from(t.subsec_nanosecond()));
                self.fd.set(
                    Expiration::OneShot(spec),
                    TimerSetTimeFlags::TFD_TIMER_ABSTIME
                        | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET,
                )
            }
        };
        if let Err(e) = result {
            debug!("setting the wall-clock timer: {e}");
            self.armed = None;
        }
    }

    /// The timer fired or the clock was set (ECANCELED): consumes it; it is
    /// armed again after the supervisor's tick. False when it was the
    /// clock being set.
    pub fn on_ready(&mut self) -> bool {
        let mut buf = [0u8; 8];
        let fired = match read(&self.fd, &mut buf) {
            Ok(_) => true,
            Err(Errno::ECANCELED) => {
                debug!("the wall clock was set");
                false
            }
            // EAGAIN: woken for nothing; anything else is not a firing.
            Err(_) => false,
        };
        // Set it anew either way: a cancelled timer stays cancelled.
        self.armed = None;
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::epoll::{EpollCreateFlags, EpollTimeout};

    fn wait(epoll: &Epoll, ms: u16) -> usize {
        let mut events = [EpollEvent::empty(); 1];
        epoll.wait(&mut events, EpollTimeout::from(ms)).unwrap()
    }

    /// Waits `ms` in which the timer must not fire. Where something sets
    /// the clock (NTP steps, a VM's guest agent: the development VM
    /// does ten times a second) the timer wakes too, cancelled; that is
    /// allowed, a firing is not.
    fn stays_quiet(epoll: &Epoll, w: &mut WallClock, ms: u16, what: &str) {
        for _ in 0..100 {
            if wait(epoll, ms) == 0 {
                return;
            }
            assert!(!w.on_ready(), "{what}");
        }
        panic!("the clock was set 100 times in a row");
    }

    #[test]
    fn fires_at_the_wall_time_and_not_when_disarmed() {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let mut w = WallClock::new(&epoll).unwrap();
        let at = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_millis(150))
            .unwrap();
        // A cancelled timer is armed again, as the runtime does at its tick.
        let fired = (0..100).any(|_| {
            w.arm(Some(at));
            assert_eq!(wait(&epoll, 2000), 1, "at its time");
            w.on_ready()
        });
        assert!(fired, "the clock was set 100 times in a row");
        assert!(jiff::Timestamp::now() >= at, "not before its time");
        stays_quiet(&epoll, &mut w, 100, "fired twice");
        w.arm(Some(
            jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_millis(50))
                .unwrap(),
        ));
        w.arm(None);
        stays_quiet(&epoll, &mut w, 200, "fired when disarmed");
    }
}
