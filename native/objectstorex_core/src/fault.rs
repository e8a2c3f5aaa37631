//! The rules of a store that fails on purpose (`ObjectStoreX.Fault`): which call of which
//! operation fails, is delayed or has its body cut. Deterministic: a rule counts the calls it
//! matches, in the order they start, and fires on the `nth` of them and the `times - 1` after.

use std::time::Duration;

use crate::error::{Error, Reason};

/// The operations a rule can name; parts, completions and aborts belong to multipart uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    Head,
    List,
    Delete,
    Copy,
    Rename,
    CreateMultipart,
    PutPart,
    CompleteMultipart,
    AbortMultipart,
}

impl Op {
    pub const ALL: [Op; 11] = [
        Op::Put,
        Op::Get,
        Op::Head,
        Op::List,
        Op::Delete,
        Op::Copy,
        Op::Rename,
        Op::CreateMultipart,
        Op::PutPart,
        Op::CompleteMultipart,
        Op::AbortMultipart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Head => "head",
            Op::List => "list",
            Op::Delete => "delete",
            Op::Copy => "copy",
            Op::Rename => "rename",
            Op::CreateMultipart => "create_multipart",
            Op::PutPart => "put_part",
            Op::CompleteMultipart => "complete_multipart",
            Op::AbortMultipart => "abort_multipart",
        }
    }

    pub fn parse(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// Parses a reason's name as `ObjectStoreX.Error` spells it.
pub fn parse_reason(name: &str) -> Option<Reason> {
    Some(match name {
        "not_found" => Reason::NotFound,
        "already_exists" => Reason::AlreadyExists,
        "precondition_failed" => Reason::PreconditionFailed,
        "not_modified" => Reason::NotModified,
        "permission_denied" => Reason::PermissionDenied,
        "unauthenticated" => Reason::Unauthenticated,
        "not_supported" => Reason::NotSupported,
        "invalid_range" => Reason::InvalidRange,
        "timeout" => Reason::Timeout,
        "network_error" => Reason::NetworkError,
        "internal" => Reason::Internal,
        "generic" => Reason::Generic,
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The call fails before it reaches the store.
    Fail,
    /// A GET's body fails once it reaches this byte of the object.
    CutBody(u64),
    /// The call waits this long before it reaches the store.
    Delay(Duration),
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub action: Action,
    /// Empty: every operation.
    pub ops: Vec<Op>,
    pub glob: Option<String>,
    /// Only this part number (1-based, in the order the parts were cut) of an upload.
    pub part: Option<u64>,
    /// The first matching call that fires (1-based).
    pub nth: u64,
    /// How many matching calls fire from the `nth` on; `None`: all of them.
    pub times: Option<u64>,
    pub reason: Reason,
    pub retryable: bool,
    pub message: Option<String>,
}

/// One call, as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub op: Op,
    pub path: &'a str,
    pub part: Option<u64>,
}

/// What the rules decided for one call.
#[derive(Debug, Default)]
pub struct Decision {
    pub delay: Duration,
    pub fail: Option<Error>,
}

/// The body cut a GET gets: the object byte where its body fails, and with what.
#[derive(Debug)]
pub struct Cut {
    pub at: u64,
    pub error: Error,
}

/// The rules and how many calls each has matched.
#[derive(Debug)]
pub struct Rules {
    rules: Vec<(Rule, u64)>,
}

impl Rules {
    pub fn new(rules: Vec<Rule>) -> Self {
        Rules {
            rules: rules.into_iter().map(|r| (r, 0)).collect(),
        }
    }

    /// Counts `call` against every fail and delay rule it matches; the delays of the rules that
    /// fire add up, and the first failing rule that fires gives the error.
    pub fn decide(&mut self, call: Call) -> Decision {
        let mut decision = Decision::default();
        for (index, (rule, seen)) in self.rules.iter_mut().enumerate() {
            if matches!(rule.action, Action::CutBody(_)) || !matches(rule, call) {
                continue;
            }
            if !fires(rule, seen) {
                continue;
            }
            match rule.action {
                Action::Delay(d) => decision.delay += d,
                Action::Fail if decision.fail.is_none() => {
                    decision.fail = Some(injected(rule, index, call, *seen));
                }
                _ => {}
            }
        }
        decision
    }

    /// Counts a GET whose answer covers the object bytes `start..end` against every cut rule
    /// that could cut it (one cutting at or after `end` could not), and returns the first cut
    /// that fires.
    pub fn cut(&mut self, path: &str, end: u64) -> Option<Cut> {
        let call = Call {
            op: Op::Get,
            path,
            part: None,
        };
        let mut cut = None;
        for (index, (rule, seen)) in self.rules.iter_mut().enumerate() {
            let Action::CutBody(at) = rule.action else {
                continue;
            };
            if at >= end || !matches(rule, call) || !fires(rule, seen) {
                continue;
            }
            if cut.is_none() {
                cut = Some(Cut {
                    at,
                    error: injected(rule, index, call, *seen),
                });
            }
        }
        cut
    }
}

fn matches(rule: &Rule, call: Call) -> bool {
    (rule.ops.is_empty() || rule.ops.contains(&call.op))
        && rule
            .glob
            .as_deref()
            .is_none_or(|g| glob_match(g, call.path))
        && rule.part.is_none_or(|k| call.part == Some(k))
}

/// Counts one more matching call; whether the rule fires on it.
fn fires(rule: &Rule, seen: &mut u64) -> bool {
    *seen += 1;
    *seen >= rule.nth && rule.times.is_none_or(|t| *seen - rule.nth < t)
}

fn injected(rule: &Rule, index: usize, call: Call, seen: u64) -> Error {
    let what = match call.part {
        Some(k) => format!("{} (part {k}) of {:?}", call.op.name(), call.path),
        None => format!("{} of {:?}", call.op.name(), call.path),
    };
    let message = match &rule.message {
        Some(m) => format!("{m} (fault rule {}, {what}, match {seen})", index + 1),
        None => format!("fault injected by rule {}: {what}, match {seen}", index + 1),
    };
    Error::new(rule.reason, message).retryable(rule.retryable)
}

/// Matches an object path against a glob: `*` is any run of characters within one segment,
/// `**` any run across segments, `?` one character other than `/`; anything else is literal.
pub fn glob_match(glob: &str, path: &str) -> bool {
    let g: Vec<char> = glob.chars().collect();
    let p: Vec<char> = path.chars().collect();
    matches_from(&g, &p)
}

fn matches_from(g: &[char], p: &[char]) -> bool {
    match g.first() {
        None => p.is_empty(),
        Some('*') if g.get(1) == Some(&'*') => {
            // `**/` also matches nothing, so that `a/**/b` matches `a/b`.
            let rest = &g[2..];
            if rest.first() == Some(&'/') && matches_from(&rest[1..], p) {
                return true;
            }
            (0..=p.len()).any(|i| matches_from(rest, &p[i..]))
        }
        Some('*') => {
            let rest = &g[1..];
            let segment = p.iter().position(|&c| c == '/').unwrap_or(p.len());
            (0..=segment).any(|i| matches_from(rest, &p[i..]))
        }
        Some('?') => p.first().is_some_and(|&c| c != '/') && matches_from(&g[1..], &p[1..]),
        Some(&c) => p.first() == Some(&c) && matches_from(&g[1..], &p[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: Action, ops: &[Op]) -> Rule {
        Rule {
            action,
            ops: ops.to_vec(),
            glob: None,
            part: None,
            nth: 1,
            times: Some(1),
            reason: Reason::Generic,
            retryable: false,
            message: None,
        }
    }

    fn call(op: Op, path: &str) -> Call<'_> {
        Call {
            op,
            path,
            part: None,
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("a/*.csv", "a/x.csv"));
        assert!(!glob_match("a/*.csv", "a/b/x.csv"));
        assert!(glob_match("a/**/x.csv", "a/b/c/x.csv"));
        assert!(glob_match("a/**/x.csv", "a/x.csv"));
        assert!(glob_match("**", "anything/at/all"));
        assert!(glob_match("**.bin", "d/e.bin"));
        assert!(glob_match("f?le", "file"));
        assert!(!glob_match("f?le", "f/le"));
        assert!(!glob_match("a", "ab"));
        assert!(glob_match("", ""));
        assert!(glob_match("*", ""));
        assert!(!glob_match("*", "a/b"));
    }

    #[test]
    fn the_nth_call_fails_then_times_more() {
        let mut r = rule(Action::Fail, &[Op::Put]);
        r.nth = 2;
        r.times = Some(2);
        let mut rules = Rules::new(vec![r]);
        let outcomes: Vec<bool> = (0..5)
            .map(|_| rules.decide(call(Op::Put, "k")).fail.is_some())
            .collect();
        assert_eq!(outcomes, [false, true, true, false, false]);
        // other operations are not counted
        assert!(rules.decide(call(Op::Get, "k")).fail.is_none());
    }

    #[test]
    fn always_and_glob_and_part() {
        let mut always = rule(Action::Fail, &[]);
        always.times = None;
        always.glob = Some("logs/**".into());
        always.reason = Reason::Timeout;
        always.retryable = true;
        let mut part = rule(Action::Fail, &[Op::PutPart]);
        part.part = Some(3);
        let mut rules = Rules::new(vec![always, part]);
        for _ in 0..3 {
            let e = rules.decide(call(Op::Get, "logs/a/b")).fail.unwrap();
            assert_eq!(e.reason, Reason::Timeout);
            assert!(e.retryable);
            assert!(e.message.contains("rule 1"), "{}", e.message);
        }
        assert!(rules.decide(call(Op::Get, "data/a")).fail.is_none());
        let parts: Vec<bool> = (1..=4)
            .map(|k| {
                rules
                    .decide(Call {
                        op: Op::PutPart,
                        path: "big",
                        part: Some(k),
                    })
                    .fail
                    .is_some()
            })
            .collect();
        assert_eq!(parts, [false, false, true, false]);
    }

    #[test]
    fn delays_add_up_and_the_first_failure_wins() {
        let mut slow = rule(Action::Delay(Duration::from_millis(5)), &[]);
        slow.times = None;
        let mut slower = slow.clone();
        slower.action = Action::Delay(Duration::from_millis(7));
        let mut first = rule(Action::Fail, &[Op::Head]);
        first.reason = Reason::NotFound;
        let mut second = rule(Action::Fail, &[Op::Head]);
        second.reason = Reason::PermissionDenied;
        second.times = None;
        let mut rules = Rules::new(vec![slow, slower, first, second]);
        let d = rules.decide(call(Op::Head, "x"));
        assert_eq!(d.delay, Duration::from_millis(12));
        assert_eq!(d.fail.unwrap().reason, Reason::NotFound);
        // the second rule counted the first call too, and fires on its own now
        let d = rules.decide(call(Op::Head, "x"));
        assert_eq!(d.fail.unwrap().reason, Reason::PermissionDenied);
    }

    #[test]
    fn a_cut_counts_only_gets_that_reach_it() {
        let mut rules = Rules::new(vec![rule(Action::CutBody(100), &[Op::Get])]);
        assert!(rules.decide(call(Op::Get, "k")).fail.is_none());
        assert!(rules.cut("k", 100).is_none());
        let cut = rules.cut("k", 101).unwrap();
        assert_eq!(cut.at, 100);
        assert!(rules.cut("k", 1000).is_none());
    }

    #[test]
    fn names_round_trip() {
        for op in Op::ALL {
            assert_eq!(Op::parse(op.name()), Some(op));
        }
        assert_eq!(parse_reason("timeout"), Some(Reason::Timeout));
        assert_eq!(parse_reason("nif_not_loaded"), None);
    }
}
