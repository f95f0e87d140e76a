//! Series selectors: which series a query wants, written the way Prometheus writes an instant
//! vector selector (`system_filesystem_usage_bytes{host="web-01",mountpoint=~"/|/home"}`).
//! This file parses the text and decides whether a label set matches; it knows nothing of
//! how series are stored — [`super::Store::select`] uses [`Selector::matchers`] to pick its
//! index scans.
//!
//! Syntax: an optional metric name, then optional braces holding `label op "value"` matchers
//! separated by commas (a trailing comma is fine), with `=`, `!=`, `=~` and `!~`. Values are
//! quoted with `"` or `'` (backslash escapes as in Go: `\n \t \\ \" \' \xHH \uHHHH …`) or
//! with backquotes (raw, no escapes). Regexes are anchored at both ends and `.` matches a
//! newline, as in Prometheus. A label a series does not carry matches as the empty string.
//! As in Prometheus, a selector must name a metric or hold a matcher that does not match the
//! empty string, so that it cannot select every series there is.

use std::fmt;
use std::str::FromStr;

use regex::Regex;
use vigil_proto::model::Labels;

/// The label that holds the metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// How a [`LabelMatcher`] compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    RegexMatch,
    /// `!~`
    RegexNoMatch,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        }
    }
}

/// One `name op "value"` condition.
#[derive(Debug, Clone)]
pub struct LabelMatcher {
    name: String,
    op: MatchOp,
    value: String,
    /// The anchored regex, for the two regex operators.
    regex: Option<Regex>,
}

impl LabelMatcher {
    /// An `=` matcher; it cannot fail, unlike the regex ones, which only the parser builds.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// Builds a matcher, compiling the regex for `=~` and `!~`. The error is the regex
    /// crate's text reduced to one line.
    fn new(name: String, op: MatchOp, value: String) -> Result<Self, String> {
        let regex = match op {
            MatchOp::Equal | MatchOp::NotEqual => None,
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                // Compiling the bare pattern first makes sure it is balanced on its own, so
                // that a value like `a)|(b` cannot break out of the anchoring group below.
                Regex::new(&value).map_err(|error| one_line_regex_error(&error))?;
                Some(
                    Regex::new(&format!("^(?s:{value})$"))
                        .map_err(|error| one_line_regex_error(&error))?,
                )
            }
        };
        Ok(Self {
            name,
            op,
            value,
            regex,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a label value (the empty string for a missing label) satisfies this matcher.
    pub fn matches(&self, label_value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => label_value == self.value,
            (MatchOp::NotEqual, _) => label_value != self.value,
            (MatchOp::RegexMatch, Some(regex)) => regex.is_match(label_value),
            (MatchOp::RegexNoMatch, Some(regex)) => !regex.is_match(label_value),
            (MatchOp::RegexMatch | MatchOp::RegexNoMatch, None) => {
                unreachable!("regex matchers are built with their regex")
            }
        }
    }
}

impl fmt::Display for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}\"{}\"",
            self.name,
            self.op.as_str(),
            escape(&self.value)
        )
    }
}

/// A parsed selector: label matchers, the metric name being an `=` matcher on `__name__`.
#[derive(Debug, Clone)]
pub struct Selector {
    matchers: Vec<LabelMatcher>,
}

impl Selector {
    /// All series of one metric.
    pub fn metric(name: impl Into<String>) -> Self {
        Self {
            matchers: vec![LabelMatcher::equal(METRIC_NAME_LABEL, name)],
        }
    }

    /// Adds a `name="value"` condition.
    pub fn with_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.matchers.push(LabelMatcher::equal(name, value));
        self
    }

    pub fn matchers(&self) -> &[LabelMatcher] {
        &self.matchers
    }

    /// The metric name when the selector fixes one with `=`.
    pub fn metric_name(&self) -> Option<&str> {
        self.matchers
            .iter()
            .find(|matcher| matcher.name == METRIC_NAME_LABEL && matcher.op == MatchOp::Equal)
            .map(|matcher| matcher.value.as_str())
    }

    /// Whether a series with these labels (including `__name__`) is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers
            .iter()
            .all(|matcher| matcher.matches(labels.get(&matcher.name).unwrap_or("")))
    }
}

impl fmt::Display for Selector {
    /// The canonical text, which parses back to the same selector: `name{label="value",…}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let metric_name = self.matchers.iter().position(|m| {
            m.name == METRIC_NAME_LABEL && m.op == MatchOp::Equal && is_metric_name(&m.value)
        });
        if let Some(index) = metric_name {
            f.write_str(&self.matchers[index].value)?;
        }
        let rest: Vec<_> = self
            .matchers
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != metric_name)
            .collect();
        if rest.is_empty() && metric_name.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        for (position, (_, matcher)) in rest.iter().enumerate() {
            if position > 0 {
                f.write_str(",")?;
            }
            write!(f, "{matcher}")?;
        }
        f.write_str("}")
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Parser {
            text,
            chars: text.chars().collect(),
            index: 0,
        }
        .selector()
    }
}

/// Why a selector did not parse: one line naming the query, what was wrong and the 1-based
/// character where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query '{query}': {message}")]
pub struct SelectorError {
    query: String,
    /// 1-based, counted in characters; one past the last character for "the query ended".
    position: usize,
    message: String,
}

impl SelectorError {
    /// The 1-based character the error points at.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Two lines to print under the error: the query, and a caret under the character.
    pub fn pointer(&self) -> String {
        format!(
            "  {}\n  {}^",
            self.query,
            " ".repeat(self.position.saturating_sub(1))
        )
    }
}

struct Parser<'a> {
    text: &'a str,
    chars: Vec<char>,
    /// 0-based index of the next character.
    index: usize,
}

impl Parser<'_> {
    fn selector(mut self) -> Result<Selector, SelectorError> {
        let mut matchers = Vec::new();
        self.skip_whitespace();
        let start = self.index;
        let metric_name = if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        {
            Some(self.identifier(true))
        } else {
            None
        };
        self.skip_whitespace();
        match self.peek() {
            Some('{') => {
                self.index += 1;
                self.matcher_list(&mut matchers)?;
            }
            None if metric_name.is_some() => {}
            None => return Err(self.expected("a metric name or '{'")),
            Some('[') if metric_name.is_some() => {
                return Err(self.fail(
                    self.index,
                    format!(
                        "range selectors are not supported at character {}; choose the time range with --since",
                        self.index + 1
                    ),
                ))
            }
            Some(_) if metric_name.is_some() => return Err(self.expected("'{' or the end of the query")),
            Some(_) => return Err(self.expected("a metric name or '{'")),
        }
        self.skip_whitespace();
        if self.peek().is_some() {
            return Err(self.expected("the end of the query"));
        }
        if let Some(name) = metric_name {
            if let Some(other) = matchers
                .iter()
                .find(|(m, _): &&(LabelMatcher, usize)| m.name == METRIC_NAME_LABEL)
            {
                return Err(self.fail(
                    other.1,
                    format!(
                        "the metric name is given twice, as '{name}' and in the {METRIC_NAME_LABEL} matcher at character {}; keep one",
                        other.1 + 1
                    ),
                ));
            }
            matchers.insert(0, (LabelMatcher::equal(METRIC_NAME_LABEL, name), start));
        }
        if matchers.iter().all(|(matcher, _)| matcher.matches("")) {
            return Err(self.fail(
                start,
                format!(
                    "a selector needs a metric name or a matcher that does not match the empty string \
                     (like host=\"web-01\" or host=~\".+\"), at character {}",
                    start + 1
                ),
            ));
        }
        Ok(Selector {
            matchers: matchers.into_iter().map(|(matcher, _)| matcher).collect(),
        })
    }

    /// Parses matchers after `{` up to and including `}`; each comes with the index where its
    /// label name starts, for later errors.
    fn matcher_list(
        &mut self,
        matchers: &mut Vec<(LabelMatcher, usize)>,
    ) -> Result<(), SelectorError> {
        loop {
            self.skip_whitespace();
            match self.peek() {
                Some('}') => {
                    self.index += 1;
                    return Ok(());
                }
                Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
                _ => return Err(self.expected("a label name or '}'")),
            }
            let name_start = self.index;
            let name = self.identifier(false);
            self.skip_whitespace();
            let op = self.operator()?;
            self.skip_whitespace();
            let value_start = self.index;
            let value = self.string()?;
            let matcher = LabelMatcher::new(name, op, value).map_err(|reason| {
                self.fail(
                    value_start,
                    format!("invalid regex at character {}: {reason}", value_start + 1),
                )
            })?;
            matchers.push((matcher, name_start));
            self.skip_whitespace();
            match self.peek() {
                Some(',') => self.index += 1,
                Some('}') => {}
                _ => return Err(self.expected("',' or '}'")),
            }
        }
    }

    /// Reads a name whose first character the caller has checked.
    fn identifier(&mut self, allow_colon: bool) -> String {
        let start = self.index;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':'))
        {
            self.index += 1;
        }
        self.chars[start..self.index].iter().collect()
    }

    fn operator(&mut self) -> Result<MatchOp, SelectorError> {
        let op = match (self.peek(), self.chars.get(self.index + 1)) {
            (Some('='), Some('~')) => MatchOp::RegexMatch,
            (Some('='), _) => MatchOp::Equal,
            (Some('!'), Some('=')) => MatchOp::NotEqual,
            (Some('!'), Some('~')) => MatchOp::RegexNoMatch,
            _ => return Err(self.expected("one of '=', '!=', '=~', '!~'")),
        };
        self.index += op.as_str().len();
        Ok(op)
    }

    /// Reads a quoted string and returns its value with escapes resolved.
    fn string(&mut self) -> Result<String, SelectorError> {
        let quote = match self.peek() {
            Some(quote @ ('"' | '\'' | '`')) => quote,
            _ => return Err(self.expected("a quoted label value")),
        };
        let start = self.index;
        self.index += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.fail(
                    start,
                    format!("the quoted value starting at character {} is not closed; add the closing {quote}", start + 1),
                ));
            };
            self.index += 1;
            match c {
                c if c == quote => return Ok(value),
                '\\' if quote != '`' => value.push(self.escape()?),
                c => value.push(c),
            }
        }
    }

    /// Resolves the escape after a backslash (already consumed).
    fn escape(&mut self) -> Result<char, SelectorError> {
        let backslash = self.index - 1;
        let unknown = |parser: &Self| {
            let sequence: String = parser.chars
                [backslash..(parser.index + 1).min(parser.chars.len())]
                .iter()
                .collect();
            parser.fail(
                backslash,
                format!(
                    "unknown escape '{sequence}' at character {}; write '\\\\' for a backslash, or quote the value with backquotes",
                    backslash + 1
                ),
            )
        };
        let Some(c) = self.peek() else {
            return Err(unknown(self));
        };
        let simple = match c {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' | '"' | '\'' => Some(c),
            _ => None,
        };
        if let Some(resolved) = simple {
            self.index += 1;
            return Ok(resolved);
        }
        let digits = match c {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => return Err(unknown(self)),
        };
        let hex: String = self
            .chars
            .iter()
            .skip(self.index + 1)
            .take(digits)
            .collect();
        let code = (hex.chars().count() == digits && hex.chars().all(|h| h.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(&hex, 16).ok())
            .flatten()
            .and_then(char::from_u32);
        match code {
            Some(resolved) => {
                self.index += 1 + digits;
                Ok(resolved)
            }
            None => Err(self.fail(
                backslash,
                format!(
                    "escape '\\{c}' at character {} needs {digits} hex digits naming a Unicode character",
                    backslash + 1
                ),
            )),
        }
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.index += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.index).copied()
    }

    /// "expected X at character N, found Y" at the current character.
    fn expected(&self, what: &str) -> SelectorError {
        let found = match self.peek() {
            Some(c) => format!("'{c}'"),
            None => "the end of the query".to_owned(),
        };
        self.fail(
            self.index,
            format!(
                "expected {what} at character {}, found {found}",
                self.index + 1
            ),
        )
    }

    fn fail(&self, index: usize, message: String) -> SelectorError {
        SelectorError {
            query: self.text.to_owned(),
            position: index + 1,
            message,
        }
    }
}

fn is_metric_name(text: &str) -> bool {
    vigil_proto::convert::is_valid_metric_name(text)
}

/// Quotes a value for a double-quoted string that [`Parser::string`] reads back unchanged.
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push_str("\\t"),
            '\r' => escaped.push_str("\\r"),
            c if c.is_control() => escaped.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The regex crate reports a syntax error over several lines (pattern, caret, "error: …");
/// keep the last line, which says what is wrong.
fn one_line_regex_error(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("invalid regex");
    last.trim().trim_start_matches("error: ").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Selector {
        text.parse()
            .unwrap_or_else(|error| panic!("{text:?} should parse: {error}"))
    }

    fn parse_error(text: &str) -> SelectorError {
        match text.parse::<Selector>() {
            Ok(selector) => panic!("{text:?} should not parse, got {selector}"),
            Err(error) => error,
        }
    }

    fn summary(selector: &Selector) -> Vec<(String, MatchOp, String)> {
        selector
            .matchers()
            .iter()
            .map(|m| (m.name().to_owned(), m.op(), m.value().to_owned()))
            .collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn a_bare_metric_name_selects_that_metric() {
        for text in [
            "up",
            "up{}",
            "  up { } ",
            "{__name__=\"up\"}",
            "node:cpu:ratio",
        ] {
            let selector = parse(text);
            assert!(selector.metric_name().is_some(), "{text}");
        }
        assert_eq!(parse("up{}").metric_name(), Some("up"));
        assert_eq!(
            parse("node:cpu:ratio").metric_name(),
            Some("node:cpu:ratio")
        );
    }

    #[test]
    fn parses_all_four_operators_quotes_and_a_trailing_comma() {
        let selector = parse(r#"cpu{ a = "1", b!='2' , c=~"x|y",d !~ `z\d`, }"#);
        assert_eq!(
            summary(&selector),
            vec![
                ("__name__".to_owned(), MatchOp::Equal, "cpu".to_owned()),
                ("a".to_owned(), MatchOp::Equal, "1".to_owned()),
                ("b".to_owned(), MatchOp::NotEqual, "2".to_owned()),
                ("c".to_owned(), MatchOp::RegexMatch, "x|y".to_owned()),
                ("d".to_owned(), MatchOp::RegexNoMatch, r"z\d".to_owned()),
            ]
        );
    }

    #[test]
    fn resolves_backslash_escapes_in_quoted_values() {
        let selector = parse(r#"m{a="q\"t\\n\n", b='it\'s', c="\x41\u00e9\U0001F600"}"#);
        let values: Vec<_> = selector
            .matchers()
            .iter()
            .map(|m| m.value().to_owned())
            .collect();
        assert_eq!(values, ["m", "q\"t\\n\n", "it's", "Aé😀"]);
    }

    #[test]
    fn regexes_are_anchored_at_both_ends() {
        let selector = parse(r#"m{host=~"web.*"}"#);
        assert!(selector.matches(&labels(&[("__name__", "m"), ("host", "web-01")])));
        assert!(!selector.matches(&labels(&[("__name__", "m"), ("host", "old-web-01")])));
        let alternation = parse(r#"m{host=~"a|b"}"#);
        assert!(!alternation.matches(&labels(&[("__name__", "m"), ("host", "ab")])));
    }

    #[test]
    fn a_missing_label_matches_as_the_empty_string() {
        let no_mountpoint = labels(&[("__name__", "m")]);
        assert!(parse(r#"m{mountpoint=""}"#).matches(&no_mountpoint));
        assert!(parse(r#"m{mountpoint!="/"}"#).matches(&no_mountpoint));
        assert!(!parse(r#"m{mountpoint=~".+"}"#).matches(&no_mountpoint));
        assert!(parse(r#"m{mountpoint!~".+"}"#).matches(&no_mountpoint));
    }

    #[test]
    fn a_selector_without_a_name_needs_a_matcher_that_rejects_the_empty_string() {
        assert!(parse(r#"{host="a"}"#).metric_name().is_none());
        assert!(parse(r#"{host=~".+", x=""}"#).matches(&labels(&[("host", "b")])));
        for text in [r#"{host=~".*"}"#, r#"{host!="a"}"#, r#"{host=""}"#] {
            assert_eq!(parse_error(text).position(), 1, "{text}");
        }
    }

    #[test]
    fn display_gives_text_that_parses_back_to_the_same_selector() {
        let selector = parse(r#"cpu{b!="x\"\\\n\u0001", a=~"p.*"}"#);
        let again = parse(&selector.to_string());
        assert_eq!(summary(&again), summary(&selector));
        assert_eq!(
            parse(r#"{__name__="not a name", x="y"}"#).to_string(),
            r#"{__name__="not a name",x="y"}"#
        );
    }

    #[test]
    fn an_unclosed_brace_points_past_the_last_character() {
        let error = parse_error(r#"cpu{host="a""#);
        assert_eq!(error.position(), 13);
        assert_eq!(
            error.to_string(),
            r#"query 'cpu{host="a"': expected ',' or '}' at character 13, found the end of the query"#
        );
    }

    #[test]
    fn a_missing_opening_quote_points_at_the_value() {
        let error = parse_error("cpu{host=a}");
        assert_eq!(error.position(), 10);
        assert!(
            error
                .to_string()
                .contains("expected a quoted label value at character 10, found 'a'"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_closing_quote_points_at_the_opening_one() {
        let error = parse_error(r#"cpu{host="a}"#);
        assert_eq!(error.position(), 10);
        assert!(error.to_string().contains("not closed"), "{error}");
    }

    #[test]
    fn a_bad_operator_points_at_the_operator() {
        let error = parse_error(r#"cpu{host<"a"}"#);
        assert_eq!(error.position(), 9);
        assert!(
            error
                .to_string()
                .contains("expected one of '=', '!=', '=~', '!~' at character 9, found '<'"),
            "{error}"
        );
        assert_eq!(parse_error(r#"cpu{host!"a"}"#).position(), 9);
    }

    #[test]
    fn a_bad_regex_is_named_and_pointed_at() {
        let error = parse_error(r#"cpu{host=~"[a"}"#);
        assert_eq!(error.position(), 11);
        let text = error.to_string();
        assert!(text.contains("invalid regex at character 11"), "{text}");
        assert!(text.contains("unclosed character class"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn a_regex_cannot_break_out_of_its_anchoring() {
        assert_eq!(parse_error(r#"m{a=~"x)|(y"}"#).position(), 6);
    }

    #[test]
    fn empty_braces_are_refused_at_the_first_character() {
        let error = parse_error("{}");
        assert_eq!(error.position(), 1);
        assert!(error.to_string().contains("needs a metric name"), "{error}");
        assert_eq!(parse_error("  {}").position(), 3);
    }

    #[test]
    fn an_empty_query_is_refused() {
        let error = parse_error("");
        assert_eq!(
            error.to_string(),
            "query '': expected a metric name or '{' at character 1, found the end of the query"
        );
    }

    #[test]
    fn other_mistakes_point_at_the_offending_character() {
        assert_eq!(parse_error("cpu host").position(), 5);
        assert_eq!(parse_error("cpu[5m]").position(), 4);
        assert_eq!(parse_error(r#"cpu{host="a"} x"#).position(), 15);
        assert_eq!(parse_error(r#"cpu{,}"#).position(), 5);
        assert_eq!(parse_error(r#"cpu{a="1" b="2"}"#).position(), 11);
        assert_eq!(parse_error(r#"cpu{a="\q"}"#).position(), 8);
        assert_eq!(parse_error(r#"cpu{a="\u12"}"#).position(), 8);
        assert_eq!(parse_error(r#"cpu{__name__="x"}"#).position(), 5);
        assert_eq!(parse_error("1cpu").position(), 1);
        // Positions count characters, not bytes.
        assert_eq!(parse_error(r#"m{a="é" é}"#).position(), 9);
    }

    #[test]
    fn the_pointer_puts_a_caret_under_the_character() {
        let error = parse_error("cpu{host=a}");
        assert_eq!(error.pointer(), "  cpu{host=a}\n           ^");
    }

    proptest! {
        #[test]
        fn the_parser_never_panics_and_errors_point_inside_or_just_past_the_query(text in "\\PC{0,40}") {
            if let Err(error) = text.parse::<Selector>() {
                prop_assert!(error.position() >= 1);
                prop_assert!(error.position() <= text.chars().count() + 1);
                prop_assert_eq!(error.to_string().lines().count(), text.lines().count().max(1));
            }
        }

        #[test]
        fn the_parser_never_panics_on_selector_like_input(
            text in r#"[a-z_{}=!~"',\\ `.*|()\[\]]{0,30}"#,
        ) {
            let _ = text.parse::<Selector>();
        }

        #[test]
        fn any_label_value_round_trips_through_display(value in "\\PC{0,20}|[\\x00-\\x7f]{0,10}") {
            let selector = Selector::metric("m").with_label("a", value.clone());
            let again: Selector = selector.to_string().parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
            prop_assert_eq!(again.matchers()[1].value(), value.as_str());
        }
    }
}
