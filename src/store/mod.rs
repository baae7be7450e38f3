//! SQLite, one file under the data dir (`gantry.db`): sessions now; classes, progress and
//! events as the labs arrive.
//!
//! Calls are short (a row or two) and serialised by one mutex around one connection in WAL
//! mode; that is plenty for a class of hundreds.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// A session as stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionRow {
    pub id: String,
    #[serde(skip)]
    pub token: String,
    pub image: String,
    pub container_id: String,
    /// `running` or `ended`.
    pub state: String,
    pub created_at: i64,
    pub last_active: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub exit_code: Option<i32>,
    /// The lab the session was started for, if any.
    pub lab: Option<String>,
}

pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id           TEXT PRIMARY KEY,
    token        TEXT NOT NULL,
    image        TEXT NOT NULL,
    container_id TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_active  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    end_reason   TEXT,
    exit_code    INTEGER
);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state);
CREATE TABLE IF NOT EXISTS progress (
    session_id TEXT NOT NULL,
    step       INTEGER NOT NULL,
    passed_at  INTEGER NOT NULL,
    PRIMARY KEY (session_id, step)
);
";

fn row(r: &Row) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        token: r.get(1)?,
        image: r.get(2)?,
        container_id: r.get(3)?,
        state: r.get(4)?,
        created_at: r.get(5)?,
        last_active: r.get(6)?,
        expires_at: r.get(7)?,
        ended_at: r.get(8)?,
        end_reason: r.get(9)?,
        exit_code: r.get(10)?,
        lab: r.get(11)?,
    })
}

const COLUMNS: &str = "id, token, image, container_id, state, created_at, last_active, expires_at, ended_at, end_reason, exit_code, lab";

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        )
        .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        // Databases from before labs: add the column (SQLite has no ADD COLUMN IF NOT
        // EXISTS, so look first).
        let has_lab: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('sessions') WHERE name = 'lab'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(open_err)?
            > 0;
        if !has_lab {
            conn.execute_batch("ALTER TABLE sessions ADD COLUMN lab TEXT")
                .map_err(open_err)?;
        }
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (each call is
        // one statement), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        self.conn().execute(
            &format!("INSERT INTO sessions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
            params![
                s.id,
                s.token,
                s.image,
                s.container_id,
                s.state,
                s.created_at,
                s.last_active,
                s.expires_at,
                s.ended_at,
                s.end_reason,
                s.exit_code,
                s.lab
            ],
        )?;
        Ok(())
    }

    /// Records that step `step` of the session's lab passed (the first time counts).
    pub fn step_passed(&self, session: &str, step: u32, at: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO progress (session_id, step, passed_at) VALUES (?1, ?2, ?3)",
            params![session, step, at],
        )?;
        Ok(())
    }

    /// The steps of the session's lab that have passed, in order.
    pub fn passed_steps(&self, session: &str) -> Result<Vec<u32>, StoreError> {
        let conn = self.conn();
        let mut st =
            conn.prepare("SELECT step FROM progress WHERE session_id = ?1 ORDER BY step")?;
        let rows = st.query_map([session], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"),
                [id],
                row,
            )
            .optional()?)
    }

    pub fn running_sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM sessions WHERE state = 'running' ORDER BY created_at"
        ))?;
        let rows = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn count_running(&self) -> Result<usize, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM sessions WHERE state = 'running'",
            [],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    pub fn touch(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE sessions SET last_active = MAX(last_active, ?2) WHERE id = ?1",
            params![id, at],
        )?;
        Ok(())
    }

    /// Marks a session ended; a no-op if it already is.
    pub fn end_session(
        &self,
        id: &str,
        reason: &str,
        exit_code: Option<i32>,
        at: i64,
    ) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE sessions SET state = 'ended', end_reason = ?2, exit_code = ?3, ended_at = ?4
             WHERE id = ?1 AND state = 'running'",
            params![id, reason, exit_code, at],
        )?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> SessionRow {
        SessionRow {
            id: id.into(),
            token: "t".into(),
            image: "busybox".into(),
            container_id: "c".into(),
            state: "running".into(),
            created_at: 10,
            last_active: 10,
            expires_at: 100,
            ended_at: None,
            end_reason: None,
            exit_code: None,
            lab: None,
        }
    }

    #[test]
    fn sessions_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gantry.db");
        {
            let store = Store::open(&path).unwrap();
            store.insert_session(&session("a")).unwrap();
            store.insert_session(&session("b")).unwrap();
            store.touch("a", 50).unwrap();
            store.touch("a", 20).unwrap();
            assert!(store.end_session("b", "deleted", None, 60).unwrap());
            assert!(!store.end_session("b", "deleted", None, 61).unwrap());
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.count_running().unwrap(), 1);
        let a = store.session("a").unwrap().unwrap();
        assert_eq!(a.last_active, 50, "touch never moves time backwards");
        let b = store.session("b").unwrap().unwrap();
        assert_eq!((b.state.as_str(), b.ended_at), ("ended", Some(60)));
        assert!(store.session("zzz").unwrap().is_none());
    }
}
