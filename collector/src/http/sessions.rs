//! Signed-in browser sessions, in memory: a random session id (the cookie) and, per session,
//! the CSRF token every state-changing request made with that cookie must carry in the
//! `X-CSRF-Token` header. A restart signs everyone out; that is the price of keeping no
//! session secret on disk.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The name of the session cookie.
pub const COOKIE_NAME: &str = "vigil_session";
/// The header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf_token: String,
    last_used: Instant,
    created: Instant,
}

/// How long sessions live, and how many there may be.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// A session not used for this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub absolute: Duration,
    /// At most this many sessions; the one idle longest makes room.
    pub max_sessions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(8 * 3600),
            absolute: Duration::from_secs(7 * 24 * 3600),
            max_sessions: 10_000,
        }
    }
}

#[derive(Debug)]
pub struct Sessions {
    limits: SessionLimits,
    by_id: Mutex<HashMap<String, Session>>,
    /// One-time sign-in links not used yet: token → (user, made at).
    links: Mutex<HashMap<String, (String, Instant)>>,
}

/// How long a one-time sign-in link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            by_id: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
        }
    }

    /// A token for a one-time sign-in link for `user`, valid for [`LINK_LIFETIME`].
    pub fn create_link(&self, user: &str) -> String {
        let token = super::users::random_text(32);
        let now = Instant::now();
        let mut links = self
            .links
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        links.retain(|_, (_, made)| now.duration_since(*made) < LINK_LIFETIME);
        links.insert(token.clone(), (user.to_string(), now));
        token
    }

    /// The user of a link token, once: the token is gone after this.
    pub fn use_link(&self, token: &str) -> Option<String> {
        let (user, made) = self
            .links
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(token)?;
        (Instant::now().duration_since(made) < LINK_LIFETIME).then_some(user)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a session for `user`; returns its id (for the cookie) and the session.
    pub fn create(&self, user: &str) -> (String, Session) {
        let id = super::users::random_text(32);
        let now = Instant::now();
        let session = Session {
            user: user.to_string(),
            csrf_token: super::users::random_text(32),
            last_used: now,
            created: now,
        };
        let mut sessions = self.lock();
        if sessions.len() >= self.limits.max_sessions {
            sessions.retain(|_, session| self.alive(session, now));
            if sessions.len() >= self.limits.max_sessions {
                if let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, session)| session.last_used)
                    .map(|(id, _)| id.clone())
                {
                    sessions.remove(&oldest);
                }
            }
        }
        sessions.insert(id.clone(), session.clone());
        (id, session)
    }

    fn alive(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_used) < self.limits.idle
            && now.duration_since(session.created) < self.limits.absolute
    }

    /// The live session with this id, marked as used now.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut sessions = self.lock();
        let session = sessions.get_mut(id)?;
        if !self.alive(session, now) {
            sessions.remove(id);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Ends every session of `user` (removed, or its password changed).
    pub fn remove_user(&self, user: &str) {
        self.lock().retain(|_, session| session.user != user);
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let digest = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let (a, b) = (digest(a), digest(b));
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_session_ends_after_its_idle_time_and_not_before() {
        let sessions = Sessions::new(SessionLimits {
            idle: Duration::from_secs(60),
            ..SessionLimits::default()
        });
        let (id, _) = sessions.create("ana");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(sessions.get(&id).map(|s| s.user), Some("ana".into()));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(sessions.get(&id).is_some(), "using it keeps it alive");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(sessions.get(&id).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_session_idle_longest_makes_room_at_the_cap() {
        let sessions = Sessions::new(SessionLimits {
            max_sessions: 2,
            ..SessionLimits::default()
        });
        let (first, _) = sessions.create("a");
        tokio::time::advance(Duration::from_secs(1)).await;
        let (second, _) = sessions.create("b");
        tokio::time::advance(Duration::from_secs(1)).await;
        let (third, _) = sessions.create("c");
        assert!(sessions.get(&first).is_none());
        assert!(sessions.get(&second).is_some());
        assert!(sessions.get(&third).is_some());
    }

    #[test]
    fn cookies_are_found_by_name_and_secrets_compare_whole() {
        let header = "theme=dark; vigil_session=abc123; other=x";
        assert_eq!(cookie_value(header, COOKIE_NAME), Some("abc123"));
        assert_eq!(cookie_value(header, "missing"), None);
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
    }
}
