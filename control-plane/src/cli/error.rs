//! What can go wrong in an admin subcommand, printed as `error: …` on stderr.

use std::fmt;

use serde::Deserialize;

/// An admin subcommand's failure.
#[derive(Debug)]
pub enum CliError {
    /// The command line or a file is wrong (exit code 2); nothing was sent.
    Usage(String),
    /// The server answered with an error status (exit code 1).
    Api(ApiProblem),
    /// The server could not be reached, or answered something that is not the API
    /// (exit code 1).
    Transport(String),
    /// What the server sent could not be written out (exit code 1).
    Output(String),
}

/// An error answer of the admin API, from its `application/problem+json` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiProblem {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong (the problem's `detail`, else its `title`, else the body).
    pub detail: String,
    /// The offending fields, as `(name, reason)`.
    pub invalid_params: Vec<(String, String)>,
}

/// The members of a problem body the CLI prints; others are ignored.
#[derive(Debug, Deserialize)]
struct ProblemBody {
    title: Option<String>,
    detail: Option<String>,
    #[serde(rename = "invalid-params", default)]
    invalid_params: Vec<InvalidParam>,
}

#[derive(Debug, Deserialize)]
struct InvalidParam {
    name: String,
    reason: String,
}

impl ApiProblem {
    /// The problem an error answer with `status` and `body` describes; a body that is
    /// not problem+json is quoted as it is.
    pub fn from_body(status: u16, body: &[u8]) -> ApiProblem {
        match serde_json::from_slice::<ProblemBody>(body) {
            Ok(problem) => ApiProblem {
                status,
                detail: problem
                    .detail
                    .or(problem.title)
                    .unwrap_or_else(|| "(no detail)".to_string()),
                invalid_params: problem
                    .invalid_params
                    .into_iter()
                    .map(|p| (p.name, p.reason))
                    .collect(),
            },
            Err(_) => ApiProblem {
                status,
                detail: String::from_utf8_lossy(body).trim().to_string(),
                invalid_params: Vec::new(),
            },
        }
    }
}

impl CliError {
    /// The process exit code: 2 for usage errors, 1 for anything the server said.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Api(_) | CliError::Transport(_) | CliError::Output(_) => 1,
        }
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::Usage(message.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(message) | CliError::Transport(message) | CliError::Output(message) => {
                write!(f, "error: {message}")
            }
            CliError::Api(problem) => {
                write!(f, "error: {} {}", problem.status, problem.detail)?;
                for (name, reason) in &problem.invalid_params {
                    write!(f, "\n  {name}: {reason}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_prints_status_detail_and_each_invalid_param() {
        let body = br#"{"type":"about:blank","title":"Unprocessable Entity","status":422,
            "detail":"limits[0].quota: at most 5","code":"validation",
            "invalid-params":[{"name":"limits[0].quota","reason":"at most 5"}]}"#;
        let error = CliError::Api(ApiProblem::from_body(422, body));
        assert_eq!(
            error.to_string(),
            "error: 422 limits[0].quota: at most 5\n  limits[0].quota: at most 5"
        );
        assert_eq!(error.exit_code(), 1);
    }

    #[test]
    fn a_body_that_is_not_a_problem_is_quoted() {
        let problem = ApiProblem::from_body(502, b"Bad Gateway\n");
        assert_eq!(problem.detail, "Bad Gateway");
        assert_eq!(CliError::usage("x").exit_code(), 2);
    }
}
