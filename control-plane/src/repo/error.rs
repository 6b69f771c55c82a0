//! Why a query failed, classified the way the API answers it.

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The write would break a rule or a uniqueness (409).
    #[error("{0}")]
    Conflict(String),
    /// What the write refers to does not exist (404 for the addressed object).
    #[error("{0} not found")]
    NotFound(String),
    /// A value the write refers to is invalid, e.g. an unknown tier (422).
    #[error("{field}: {message}")]
    Invalid {
        /// The request field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// PostgreSQL cannot be reached or the pool has no connection to give.
    #[error("PostgreSQL unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error.
    #[error("PostgreSQL query failed")]
    Query(#[source] sqlx::Error),
    /// A stored row breaks an invariant the schema should have kept.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl RepoError {
    /// Whether PostgreSQL failed to answer — unreachable, or the query failed there —
    /// rather than answering with a refusal or a row that breaks an invariant.
    pub fn postgres_failed(&self) -> bool {
        matches!(self, RepoError::Unavailable(_) | RepoError::Query(_))
    }

    /// An invalid value of `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> RepoError {
        RepoError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for RepoError {
    fn from(error: sqlx::Error) -> RepoError {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => RepoError::Unavailable(error),
            other => RepoError::Query(other),
        }
    }
}

/// A unique violation as a conflict on `what`; other errors as they are.
pub(crate) fn unique_as_conflict(error: sqlx::Error, what: &str) -> RepoError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            RepoError::Conflict(format!("{what} already exists"))
        }
        _ => RepoError::from(error),
    }
}
