//! The JSONPath of CRD printer columns: the simple paths Kubernetes evaluates for them
//! (`.spec.replicas`, `.status.conditions[?(@.type=="Ready")].status`,
//! `.metadata.labels.app\.kubernetes\.io/name`, `.spec.items[0]`, `.spec.items[*].name`),
//! parsed once and read without copying. Like Kubernetes, a column shows the first value
//! a path finds, and nothing when a key is missing.

use serde_json::Value;

/// Why a JSONPath could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid jsonPath {path:?} at offset {offset}: {reason}")]
pub struct JsonPathError {
    pub path: String,
    pub offset: usize,
    pub reason: &'static str,
}

/// A parsed JSONPath.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    /// A list index; negative ones count from the end.
    Index(i64),
    /// Every element of a list, or every value of a map.
    Wildcard,
    /// The elements of a list for which the filter holds.
    Filter(Box<Filter>),
}

/// `?(@.path)`, or `?(@.path OP literal)`.
#[derive(Clone, Debug, PartialEq)]
struct Filter {
    path: Vec<Step>,
    test: Option<(Op, Literal)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug, PartialEq)]
enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl JsonPath {
    /// Parses `path`, with or without the braces of a template (`{.spec.replicas}`) and a
    /// leading `$`.
    pub fn parse(path: &str) -> Result<JsonPath, JsonPathError> {
        let body = path
            .trim()
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .unwrap_or(path.trim());
        let mut p = Parser {
            path,
            src: body.as_bytes(),
            at: 0,
        };
        if p.src.is_empty() {
            return Err(p.error("empty path"));
        }
        if p.peek() == Some(b'$') {
            p.at += 1;
        }
        let steps = p.steps(false)?;
        if p.at < p.src.len() {
            return Err(p.error("unexpected character"));
        }
        Ok(JsonPath { steps })
    }

    /// The first value the path finds in `v`.
    pub fn first<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        first(&self.steps, v)
    }
}

fn first<'a>(steps: &[Step], v: &'a Value) -> Option<&'a Value> {
    let Some((step, rest)) = steps.split_first() else {
        return Some(v);
    };
    match step {
        Step::Field(name) => first(rest, v.get(name.as_str())?),
        Step::Index(i) => {
            let list = v.as_array()?;
            let i = if *i < 0 { list.len() as i64 + i } else { *i };
            first(rest, list.get(usize::try_from(i).ok()?)?)
        }
        Step::Wildcard => match v {
            Value::Array(list) => list.iter().find_map(|x| first(rest, x)),
            Value::Object(map) => map.values().find_map(|x| first(rest, x)),
            _ => None,
        },
        Step::Filter(f) => v
            .as_array()?
            .iter()
            .filter(|x| f.holds(x))
            .find_map(|x| first(rest, x)),
    }
}

impl Filter {
    fn holds(&self, item: &Value) -> bool {
        let Some(found) = first(&self.path, item) else {
            return false;
        };
        let Some((op, literal)) = &self.test else {
            return true;
        };
        let ord = match (literal, found) {
            (Literal::Str(s), Value::String(f)) => f.as_str().cmp(s.as_str()),
            (Literal::Num(n), Value::Number(f)) => {
                match f.as_f64().and_then(|f| f.partial_cmp(n)) {
                    Some(o) => o,
                    None => return false,
                }
            }
            (Literal::Bool(b), Value::Bool(f)) => f.cmp(b),
            _ => return *op == Op::Ne,
        };
        match op {
            Op::Eq => ord.is_eq(),
            Op::Ne => ord.is_ne(),
            Op::Lt => ord.is_lt(),
            Op::Le => ord.is_le(),
            Op::Gt => ord.is_gt(),
            Op::Ge => ord.is_ge(),
        }
    }
}

struct Parser<'a> {
    path: &'a str,
    src: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, reason: &'static str) -> JsonPathError {
        JsonPathError {
            path: self.path.to_string(),
            offset: self.at,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.at += 1;
        }
        found
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    /// Steps up to the end, or, inside a filter, up to what is not a step.
    fn steps(&mut self, in_filter: bool) -> Result<Vec<Step>, JsonPathError> {
        let mut steps = Vec::new();
        // A path may start with a bare name (`spec.replicas`).
        if !in_filter && self.peek().is_some_and(|c| c != b'.' && c != b'[') {
            steps.push(Step::Field(self.name()?));
        }
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.at += 1;
                    match self.peek() {
                        Some(b'.') => return Err(self.error("recursive descent is not supported")),
                        Some(b'*') => {
                            self.at += 1;
                            steps.push(Step::Wildcard);
                        }
                        Some(b'[') => {}
                        _ => steps.push(Step::Field(self.name()?)),
                    }
                }
                Some(b'[') => {
                    self.at += 1;
                    steps.push(self.bracket()?);
                }
                _ => return Ok(steps),
            }
        }
    }

    /// A field name, where `\` escapes the next character (`app\.kubernetes\.io`).
    fn name(&mut self) -> Result<String, JsonPathError> {
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                b'\\' => {
                    self.at += 1;
                    let escaped = self.peek().ok_or_else(|| self.error("dangling escape"))?;
                    out.push(escaped);
                }
                b'.' | b'[' | b']' | b' ' | b'=' | b'!' | b'<' | b'>' | b')' => break,
                c => out.push(c),
            }
            self.at += 1;
        }
        if out.is_empty() {
            return Err(self.error("expected a field name"));
        }
        String::from_utf8(out).map_err(|_| self.error("field name is not UTF-8"))
    }

    /// What follows `[`, up to and including `]`.
    fn bracket(&mut self) -> Result<Step, JsonPathError> {
        let step = match self.peek() {
            Some(b'*') => {
                self.at += 1;
                Step::Wildcard
            }
            Some(q @ (b'\'' | b'"')) => {
                self.at += 1;
                Step::Field(self.quoted(q)?)
            }
            Some(b'?') => {
                self.at += 1;
                Step::Filter(Box::new(self.filter()?))
            }
            _ => Step::Index(self.integer()?),
        };
        if !self.eat(b']') {
            return Err(self.error("expected ']'"));
        }
        Ok(step)
    }

    fn quoted(&mut self, quote: u8) -> Result<String, JsonPathError> {
        let start = self.at;
        while self.peek().is_some_and(|c| c != quote) {
            self.at += 1;
        }
        if self.peek().is_none() {
            return Err(self.error("unterminated string"));
        }
        let s = std::str::from_utf8(&self.src[start..self.at])
            .map_err(|_| self.error("string is not UTF-8"))?
            .to_string();
        self.at += 1;
        Ok(s)
    }

    fn integer(&mut self) -> Result<i64, JsonPathError> {
        let start = self.at;
        self.eat(b'-');
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        std::str::from_utf8(&self.src[start..self.at])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.error("expected an index, '*', a quoted name or a filter"))
    }

    /// `(@.path)` or `(@.path OP literal)`, after the `?`.
    fn filter(&mut self) -> Result<Filter, JsonPathError> {
        if !self.eat(b'(') {
            return Err(self.error("expected '(' after '?'"));
        }
        self.skip_spaces();
        if !self.eat(b'@') {
            return Err(self.error("a filter must test '@'"));
        }
        let path = self.steps(true)?;
        self.skip_spaces();
        let test = if self.peek() == Some(b')') {
            None
        } else {
            let op = self.op()?;
            self.skip_spaces();
            let literal = self.literal()?;
            self.skip_spaces();
            Some((op, literal))
        };
        if !self.eat(b')') {
            return Err(self.error("expected ')' to close the filter"));
        }
        Ok(Filter { path, test })
    }

    fn op(&mut self) -> Result<Op, JsonPathError> {
        let two = self.src.get(self.at..self.at + 2).unwrap_or(&[]);
        let (op, n) = match two {
            b"==" => (Op::Eq, 2),
            b"!=" => (Op::Ne, 2),
            b"<=" => (Op::Le, 2),
            b">=" => (Op::Ge, 2),
            [b'<', ..] => (Op::Lt, 1),
            [b'>', ..] => (Op::Gt, 1),
            _ => return Err(self.error("expected a comparison (==, !=, <, <=, >, >=)")),
        };
        self.at += n;
        Ok(op)
    }

    fn literal(&mut self) -> Result<Literal, JsonPathError> {
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.at += 1;
                Ok(Literal::Str(self.quoted(q)?))
            }
            _ => {
                let start = self.at;
                while self.peek().is_some_and(|c| c != b')' && c != b' ') {
                    self.at += 1;
                }
                let word = std::str::from_utf8(&self.src[start..self.at]).unwrap_or("");
                match word {
                    "true" => Ok(Literal::Bool(true)),
                    "false" => Ok(Literal::Bool(false)),
                    w => w
                        .parse()
                        .map(Literal::Num)
                        .map_err(|_| self.error("expected a quoted string, a number or a boolean")),
                }
            }
        }
    }
}
