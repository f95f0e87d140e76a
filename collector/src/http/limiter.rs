//! Failed sign-ins, counted per account and per address in memory: past a few failures in a
//! window, further attempts are refused (even with the right password) until the window
//! ends. Both maps are bounded, so a flood of made-up names cannot grow them without end.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How many failures are allowed, over how long.
#[derive(Debug, Clone, Copy)]
pub struct SignInLimits {
    /// Failures of one account within `window` before it is locked for the rest of it.
    pub per_account: u32,
    /// Failures from one address within `window` before it is refused for the rest of it.
    pub per_address: u32,
    pub window: Duration,
    /// Accounts and addresses remembered at most, each.
    pub max_tracked: usize,
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self {
            per_account: 5,
            per_address: 20,
            window: Duration::from_secs(15 * 60),
            max_tracked: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
}

#[derive(Debug, Default)]
struct Tracked {
    accounts: HashMap<String, Failures>,
    addresses: HashMap<IpAddr, Failures>,
}

#[derive(Debug)]
pub struct SignInLimiter {
    limits: SignInLimits,
    tracked: Mutex<Tracked>,
}

impl SignInLimiter {
    pub fn new(limits: SignInLimits) -> Self {
        Self {
            limits,
            tracked: Mutex::new(Tracked::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.tracked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Err(wait)` when the account or the address has failed too often: try again after
    /// `wait`.
    pub fn check(&self, account: &str, address: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let tracked = self.lock();
        let blocked = |failures: Option<&Failures>, allowed: u32| {
            failures
                .filter(|f| f.count >= allowed && now.duration_since(f.first) < self.limits.window)
                .map(|f| self.limits.window - now.duration_since(f.first))
        };
        let wait = [
            blocked(tracked.accounts.get(account), self.limits.per_account),
            blocked(tracked.addresses.get(&address), self.limits.per_address),
        ]
        .into_iter()
        .flatten()
        .max();
        wait.map_or(Ok(()), Err)
    }

    pub fn record_failure(&self, account: &str, address: IpAddr) {
        let now = Instant::now();
        let mut tracked = self.lock();
        let (window, cap) = (self.limits.window, self.limits.max_tracked);
        count(&mut tracked.accounts, account.to_string(), now, window, cap);
        count(&mut tracked.addresses, address, now, window, cap);
    }

    /// A successful sign-in clears the account's failures (not the address's).
    pub fn record_success(&self, account: &str) {
        self.lock().accounts.remove(account);
    }
}

fn count<K: Hash + Eq + Clone>(
    map: &mut HashMap<K, Failures>,
    key: K,
    now: Instant,
    window: Duration,
    cap: usize,
) {
    if map.len() >= cap && !map.contains_key(&key) {
        map.retain(|_, failures| now.duration_since(failures.first) < window);
        if map.len() >= cap {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, failures)| failures.first)
                .map(|(key, _)| key.clone())
            {
                map.remove(&oldest);
            }
        }
    }
    let failures = map.entry(key).or_insert(Failures {
        count: 0,
        first: now,
    });
    if now.duration_since(failures.first) >= window {
        *failures = Failures {
            count: 0,
            first: now,
        };
    }
    failures.count += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test(start_paused = true)]
    async fn an_account_is_locked_after_its_failures_until_the_window_ends() {
        let limiter = SignInLimiter::new(SignInLimits {
            per_account: 3,
            window: Duration::from_secs(60),
            ..SignInLimits::default()
        });
        for _ in 0..3 {
            assert!(limiter.check("ana", HOME).is_ok());
            limiter.record_failure("ana", HOME);
        }
        let wait = limiter.check("ana", HOME).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60));
        assert!(limiter.check("bob", HOME).is_ok(), "other accounts go on");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(limiter.check("ana", HOME).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_trying_many_accounts_is_refused() {
        let limiter = SignInLimiter::new(SignInLimits {
            per_address: 4,
            ..SignInLimits::default()
        });
        for n in 0..4 {
            limiter.record_failure(&format!("user{n}"), HOME);
        }
        assert!(limiter.check("someone-new", HOME).is_err());
        let elsewhere: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(limiter.check("someone-new", elsewhere).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_maps_stay_within_their_bound() {
        let limiter = SignInLimiter::new(SignInLimits {
            max_tracked: 8,
            ..SignInLimits::default()
        });
        for n in 0..100 {
            limiter.record_failure(&format!("user{n}"), HOME);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(limiter.lock().accounts.len() <= 8);
    }
}
