//! The query of an exec, attach or portforward request, as Kubernetes reads it:
//! `command` (repeated), `container`, `stdin`, `stdout`, `stderr`, `tty`; `ports`.

use crate::error::Error;

/// What an exec or attach request asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

fn flag(name: &str, v: &str) -> Result<bool, Error> {
    match v {
        "true" | "1" | "True" | "TRUE" | "" => Ok(true),
        "false" | "0" | "False" | "FALSE" => Ok(false),
        _ => Err(Error::BadRequest(format!(
            "{name}: invalid value {v:?}: must be true or false"
        ))),
    }
}

impl StreamOptions {
    /// Parses the query; `exec` needs a command. At least one stream is required, and a
    /// terminal carries stderr on stdout.
    pub fn parse(query: &str, exec: bool) -> Result<Self, Error> {
        let mut o = StreamOptions::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "command" => o.command.push(v.into_owned()),
                "container" => o.container = v.into_owned(),
                "stdin" | "input" => o.stdin = flag("stdin", &v)?,
                "stdout" => o.stdout = flag("stdout", &v)?,
                "stderr" => o.stderr = flag("stderr", &v)?,
                "tty" => o.tty = flag("tty", &v)?,
                _ => {}
            }
        }
        if exec && o.command.is_empty() {
            return Err(Error::BadRequest(
                "you must specify at least one command for the container".into(),
            ));
        }
        if !o.stdin && !o.stdout && !o.stderr {
            return Err(Error::BadRequest(
                "you must specify at least one of stdin, stdout, stderr".into(),
            ));
        }
        if o.tty {
            o.stderr = false;
        }
        Ok(o)
    }
}

/// The `ports` of a portforward request (repeated, or comma-separated).
pub fn parse_ports(query: &str) -> Result<Vec<u16>, Error> {
    let mut ports = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "ports" {
            continue;
        }
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let port = p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                Error::BadRequest(format!("ports: invalid port {p:?}: must be 1-65535"))
            })?;
            ports.push(port);
        }
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_as_kubernetes_reads_them() {
        let o = StreamOptions::parse(
            "command=sh&command=-c&command=echo+a%26b&container=c1&stdin=true&stdout=true&tty=true&stderr=true",
            true,
        )
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo a&b"]);
        assert_eq!(o.container, "c1");
        assert!(o.stdin && o.stdout && o.tty);
        assert!(!o.stderr, "a terminal carries stderr on stdout");
        let bad = [
            ("stdout=true", true, "at least one command"),
            ("command=ls", true, "at least one of stdin, stdout, stderr"),
            ("command=ls&stdout=maybe", true, "stdout: invalid value"),
        ];
        for (q, exec, want) in bad {
            let e = StreamOptions::parse(q, exec).unwrap_err().to_string();
            assert!(e.contains(want), "{q}: {e}");
        }
        assert!(
            StreamOptions::parse("stdout=1", false).is_ok(),
            "attach needs no command"
        );
    }

    #[test]
    fn ports_are_repeated_or_comma_separated() {
        assert_eq!(
            parse_ports("ports=80&ports=443,8080").unwrap(),
            [80, 443, 8080]
        );
        assert!(parse_ports("ports=0").is_err());
        assert!(parse_ports("ports=http").is_err());
        assert_eq!(parse_ports("").unwrap(), Vec::<u16>::new());
    }
}
