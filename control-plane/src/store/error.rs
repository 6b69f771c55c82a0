//! Why a store call failed, and which failures are about reaching the store rather than
//! a bug.

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time; retrying later may work.
    #[error("counter store unreachable")]
    Unreachable(#[source] ::redis::RedisError),
    /// The store answered with an error of its own (script error, wrong type, …).
    #[error("counter store command failed")]
    Command(#[source] ::redis::RedisError),
    /// The store answered something this code does not understand.
    #[error("unexpected answer from the counter store: {0}")]
    Protocol(String),
    /// The caller asked for something the store refuses (a gauge without a request id).
    #[error("invalid store call: {0}")]
    Invalid(String),
    /// The call did not finish within its caller's deadline; a check the store got to
    /// only after it counted nothing.
    #[error("no answer from the counter store within the caller's deadline")]
    PastDeadline,
    /// The store failed several calls in a row: calls skip it for a while
    /// ([`crate::breaker`]).
    #[error("the counter store is considered down (circuit open)")]
    CircuitOpen,
}

impl StoreError {
    /// Whether the failure is about reaching the store (answer 503 and let the filter
    /// apply its failure mode) rather than a bug (answer 500).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable(_) | StoreError::PastDeadline | StoreError::CircuitOpen
        )
    }
}

impl StoreError {
    /// Whether the call certainly never reached the store, so nothing of it can have
    /// been counted: the breaker kept it back, or the connection was refused. A timeout
    /// or a dropped connection is not such a proof (the store may have run the call).
    pub fn never_reached_the_store(&self) -> bool {
        match self {
            StoreError::CircuitOpen => true,
            StoreError::Unreachable(error) => error.is_connection_refusal(),
            _ => false,
        }
    }
}

impl From<::redis::RedisError> for StoreError {
    fn from(error: ::redis::RedisError) -> StoreError {
        if error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_unrecoverable_error()
            || error.is_cluster_error()
        {
            StoreError::Unreachable(error)
        } else {
            StoreError::Command(error)
        }
    }
}
