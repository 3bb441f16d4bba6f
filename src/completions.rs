//! `corral completions bash|zsh|fish`: shell completion for svctl's verbs,
//! options and service names. The scripts are written from one table of
//! verbs, which a test holds equal to svctl's usage text and parser. Service
//! names come from the running corral (`svctl status --names`, with the
//! `--socket` typed so far), so they are the names corral knows now; with
//! no corral to ask, nothing is offered.

/// What a verb takes after its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Args {
    Nothing,
    Names,
    /// A signal, then names (`signal HUP web`).
    SignalThenNames,
    /// A service, one of its actions, then the action's own arguments
    /// (`action web validate --strict`).
    ServiceThenAction,
}

/// One svctl verb.
#[derive(Debug)]
pub struct VerbInfo {
    pub name: &'static str,
    /// Its own options (beside the global ones).
    pub options: &'static [&'static str],
    pub args: Args,
    pub about: &'static str,
}

/// svctl's verbs, in the order of its usage text.
pub const VERBS: &[VerbInfo] = &[
    VerbInfo {
        name: "status",
        options: &["--json", "--names"],
        args: Args::Names,
        about: "state of all or the named services",
    },
    VerbInfo {
        name: "start",
        options: &[],
        args: Args::Names,
        about: "start (with what they require); wait until running",
    },
    VerbInfo {
        name: "stop",
        options: &[],
        args: Args::Names,
        about: "stop (with what requires them); wait until stopped",
    },
    VerbInfo {
        name: "restart",
        options: &[],
        args: Args::Names,
        about: "stop and start again; wait until running",
    },
    VerbInfo {
        name: "run",
        options: &[],
        args: Args::Names,
        about: "run oneshots now; wait until they are done",
    },
    VerbInfo {
        name: "signal",
        options: &[],
        args: Args::SignalThenNames,
        about: "send a signal to the services' main processes",
    },
    VerbInfo {
        name: "wait",
        options: &[],
        args: Args::Names,
        about: "until they are ready, oneshots done",
    },
    VerbInfo {
        name: "logs",
        options: &["-f", "--follow", "-n", "--lines"],
        args: Args::Names,
        about: "the last lines of each service; -f follows",
    },
    VerbInfo {
        name: "inspect",
        options: &["--json"],
        args: Args::Nothing,
        about: "the container: its images, its run, its services",
    },
    VerbInfo {
        name: "action",
        options: &[],
        args: Args::ServiceThenAction,
        about: "run an action of a service; its output streams here",
    },
    VerbInfo {
        name: "actions",
        options: &["--json", "--names"],
        args: Args::Names,
        about: "the actions of all or the named services",
    },
    VerbInfo {
        name: "events",
        options: &["--json"],
        args: Args::Names,
        about: "every change of the services from now on, a line each",
    },
    VerbInfo {
        name: "health",
        options: &[],
        args: Args::Nothing,
        about: "exit 0 iff every enabled service is up, ready and healthy",
    },
    VerbInfo {
        name: "reload",
        options: &["--dry-run"],
        args: Args::Nothing,
        about: "re-read the services directory and apply what changed",
    },
    VerbInfo {
        name: "shutdown",
        options: &[],
        args: Args::Nothing,
        about: "stop everything and make corral exit",
    },
];

/// Options before the verb, and the ones of any verb that take a value.
const GLOBAL: &[&str] = &["--socket", "--timeout", "--help"];

/// Signals offered after `signal`: the ones a daemon is usually sent.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "TERM", "KILL", "USR1", "USR2", "WINCH", "ALRM", "CONT", "STOP", "TSTP",
];

/// The script for `shell`, or `None` for a shell this does not know.
pub fn script(shell: &str) -> Option<String> {
    match shell {
        "bash" => Some(bash()),
        "zsh" => Some(zsh()),
        "fish" => Some(fish()),
        _ => None,
    }
}

/// `corral completions SHELL`: prints the script; the exit code.
pub fn print(shell: &str) -> i32 {
    match script(shell) {
        Some(s) => {
            print!("{s}");
            0
        }
        None => {
            eprintln!("corral completions {shell}: no such shell; use bash, zsh or fish");
            2
        }
    }
}

fn verbs_where(f: impl Fn(&VerbInfo) -> bool) -> String {
    VERBS
        .iter()
        .filter(|v| f(v))
        .map(|v| v.name)
        .collect::<Vec<_>>()
        .join("|")
}

fn bash() -> String {
    let verbs: Vec<&str> = VERBS.iter().map(|v| v.name).collect();
    let options: String = VERBS
        .iter()
        .filter(|v| !v.options.is_empty())
        .map(|v| format!("        {}) opts=\"{}\" ;;\n", v.name, v.options.join(" ")))
        .collect();
    format!(
        r#"# bash completion for svctl, written by `corral completions bash`.
# Install: corral completions bash > /usr/share/bash-completion/completions/svctl

_svctl() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    case $prev in
        --socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --timeout|-n|--lines) return ;;
    esac
    local i verb= socket=() first= second=
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${{COMP_WORDS[i]}} in
            --socket) socket=(--socket "${{COMP_WORDS[i+1]}}"); ((i++)) ;;
            --timeout|-n|--lines) ((i++)) ;;
            -*) ;;
            *) if [[ -z $verb ]]; then verb=${{COMP_WORDS[i]}}; elif [[ -z $first ]]; then first=${{COMP_WORDS[i]}}; elif [[ -z $second ]]; then second=${{COMP_WORDS[i]}}; fi ;;
        esac
    done
    if [[ -z $verb ]]; then
        COMPREPLY=($(compgen -W "{verbs} {global}" -- "$cur"))
        return
    fi
    local opts=
    case $verb in
{options}    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts --timeout" -- "$cur"))
        return
    fi
    case $verb in
        {signal})
            if [[ -z $first ]]; then
                COMPREPLY=($(compgen -W "{signals}" -- "$cur"))
                return
            fi ;;
        {action})
            if [[ -n $second ]]; then
                COMPREPLY=($(compgen -f -- "$cur"))
                return
            elif [[ -n $first ]]; then
                COMPREPLY=($(compgen -W "$(svctl "${{socket[@]}}" --timeout 2s actions --names "$first" 2>/dev/null)" -- "$cur"))
                return
            fi ;;
        {nothing}) return ;;
    esac
    COMPREPLY=($(compgen -W "$(svctl "${{socket[@]}}" --timeout 2s status --names 2>/dev/null)" -- "$cur"))
}}
complete -F _svctl svctl
"#,
        verbs = verbs.join(" "),
        global = GLOBAL.join(" "),
        signal = verbs_where(|v| v.args == Args::SignalThenNames),
        action = verbs_where(|v| v.args == Args::ServiceThenAction),
        nothing = verbs_where(|v| v.args == Args::Nothing),
        signals = SIGNALS.join(" "),
    )
}

fn zsh() -> String {
    let verbs: String = VERBS
        .iter()
        .map(|v| format!("        '{}:{}'\n", v.name, v.about.replace('\'', "")))
        .collect();
    let options: String = VERBS
        .iter()
        .filter(|v| !v.options.is_empty())
        .map(|v| {
            let specs: Vec<String> = v
                .options
                .iter()
                .map(|o| match *o {
                    "-n" | "--lines" => format!("'{o}[lines of each service]:number:'"),
                    _ => format!("'{o}'"),
                })
                .collect();
            format!("        {}) opts=({}) ;;\n", v.name, specs.join(" "))
        })
        .collect();
    format!(
        r#"#compdef svctl
# zsh completion for svctl, written by `corral completions zsh`.
# Install: corral completions zsh > "${{fpath[1]}}/_svctl" (then compinit)

_svctl_services() {{
    local -a socket names
    [[ -n $_svctl_socket ]] && socket=(--socket "$_svctl_socket")
    names=(${{(f)"$(svctl "${{socket[@]}}" --timeout 2s status --names 2>/dev/null)"}})
    compadd -a names
}}

_svctl_actions() {{
    local -a socket names
    [[ -n $_svctl_socket ]] && socket=(--socket "$_svctl_socket")
    names=(${{(f)"$(svctl "${{socket[@]}}" --timeout 2s actions --names "$1" 2>/dev/null)"}})
    compadd -a names
}}

_svctl() {{
    local -a verbs opts
    verbs=(
{verbs}    )
    local curcontext=$curcontext state line
    local -A opt_args
    _arguments -C \
        '--socket[control socket]:socket:_files' \
        '--timeout[how long to wait]:duration:' \
        '--help[usage]' \
        '1:verb:->verb' \
        '*::arg:->args'
    # The options before the verb, before a nested _arguments resets them.
    local _svctl_socket=${{(Q)opt_args[--socket]}}
    case $state in
        verb) _describe -t verbs 'svctl verb' verbs ;;
        args)
            opts=()
            case ${{line[1]}} in
{options}            esac
            case ${{line[1]}} in
                {signal})
                    if (( CURRENT == 2 )); then
                        compadd {signals}
                    else
                        _svctl_services
                    fi ;;
                {action})
                    if (( CURRENT == 2 )); then
                        _svctl_services
                    elif (( CURRENT == 3 )); then
                        _svctl_actions "${{line[2]}}"
                    else
                        _files
                    fi ;;
                {nothing}) _arguments $opts ;;
                *) _arguments $opts '*:service:_svctl_services' ;;
            esac ;;
    esac
}}

_svctl "$@"
"#,
        signal = verbs_where(|v| v.args == Args::SignalThenNames),
        action = verbs_where(|v| v.args == Args::ServiceThenAction),
        nothing = verbs_where(|v| v.args == Args::Nothing),
        signals = SIGNALS.join(" "),
    )
}

fn fish() -> String {
    let mut out = String::from(
        "# fish completion for svctl, written by `corral completions fish`.\n\
         # Install: corral completions fish > ~/.config/fish/completions/svctl.fish\n\n\
         function __svctl_services\n    \
         set -l socket\n    \
         set -l words (commandline -opc)\n    \
         for i in (seq (count $words))\n        \
         if test \"$words[$i]\" = --socket\n            \
         set socket --socket $words[(math $i + 1)]\n        \
         end\n    \
         end\n    \
         svctl $socket --timeout 2s status --names 2>/dev/null\n\
         end\n\n\
         function __svctl_args\n    \
         # The words after the verb, options and their values left out.\n    \
         set -l skip 0\n    \
         set -l verb 0\n    \
         for w in (commandline -opc)[2..-1]\n        \
         if test $skip = 1\n            \
         set skip 0\n        \
         else if contains -- $w --socket --timeout -n --lines\n            \
         set skip 1\n        \
         else if string match -q -- '-*' $w\n        \
         else if test $verb = 0\n            \
         set verb 1\n        \
         else\n            \
         echo $w\n        \
         end\n    \
         end\n\
         end\n\n\
         function __svctl_actions\n    \
         set -l words (commandline -opc)\n    \
         set -l socket\n    \
         for i in (seq (count $words))\n        \
         if test \"$words[$i]\" = --socket\n            \
         set socket --socket $words[(math $i + 1)]\n        \
         end\n    \
         end\n    \
         svctl $socket --timeout 2s actions --names (__svctl_args)[1] 2>/dev/null\n\
         end\n\n\
         complete -c svctl -f\n\
         complete -c svctl -l socket -r -F -d 'control socket'\n\
         complete -c svctl -l timeout -x -d 'how long to wait'\n\
         complete -c svctl -l help -d usage\n",
    );
    let all: Vec<&str> = VERBS.iter().map(|v| v.name).collect();
    let all = all.join(" ");
    for v in VERBS {
        out.push_str(&format!(
            "complete -c svctl -n 'not __fish_seen_subcommand_from {all}' -a {} -d '{}'\n",
            v.name,
            v.about.replace('\'', "")
        ));
        let seen = format!("__fish_seen_subcommand_from {}", v.name);
        for o in v.options {
            let spec = match o.strip_prefix("--") {
                Some(long) => format!("-l {long}"),
                None => format!("-s {}", o.trim_start_matches('-')),
            };
            let value = if matches!(*o, "-n" | "--lines") {
                " -x"
            } else {
                ""
            };
            out.push_str(&format!("complete -c svctl -n '{seen}' {spec}{value}\n"));
        }
        match v.args {
            Args::Nothing => {}
            Args::Names => out.push_str(&format!(
                "complete -c svctl -n '{seen}' -a '(__svctl_services)'\n"
            )),
            Args::SignalThenNames => {
                out.push_str(&format!(
                    "complete -c svctl -n '{seen}; and test (count (__svctl_args)) -eq 0' -a '{}'\n",
                    SIGNALS.join(" ")
                ));
                out.push_str(&format!(
                    "complete -c svctl -n '{seen}; and test (count (__svctl_args)) -gt 0' -a '(__svctl_services)'\n"
                ));
            }
            Args::ServiceThenAction => {
                out.push_str(&format!(
                    "complete -c svctl -n '{seen}; and test (count (__svctl_args)) -eq 0' -a '(__svctl_services)'\n"
                ));
                out.push_str(&format!(
                    "complete -c svctl -n '{seen}; and test (count (__svctl_args)) -eq 1' -a '(__svctl_actions)'\n"
                ));
                out.push_str(&format!(
                    "complete -c svctl -n '{seen}; and test (count (__svctl_args)) -gt 1' -F\n"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is svctl's: the usage text lists exactly these verbs in
    /// this order, and each verb parses with each of its options.
    #[test]
    fn verbs_are_svctls() {
        let listed: Vec<&str> = crate::ctl::USAGE
            .lines()
            .skip_while(|l| !l.starts_with("verbs:"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let names: Vec<&str> = VERBS.iter().map(|v| v.name).collect();
        assert_eq!(listed, names);
        for v in VERBS {
            let mut args = vec![v.name.to_string()];
            match v.args {
                Args::Nothing => {}
                Args::Names => args.push("web".into()),
                Args::SignalThenNames => args.extend(["HUP".into(), "web".into()]),
                Args::ServiceThenAction => args.extend(["web".into(), "validate".into()]),
            }
            assert!(crate::ctl::parses(&args), "{args:?}");
            for o in v.options {
                let mut with = vec![v.name.to_string(), o.to_string()];
                if matches!(*o, "-n" | "--lines") {
                    with.push("5".into());
                }
                with.extend(args.iter().skip(1).cloned());
                assert!(crate::ctl::parses(&with), "{with:?}");
            }
        }
        // And a verb not in the table does not parse.
        assert!(!crate::ctl::parses(&["frobnicate".to_string()]));
    }

    #[test]
    fn every_shell_gets_every_verb() {
        for shell in ["bash", "zsh", "fish"] {
            let s = script(shell).unwrap();
            for v in VERBS {
                assert!(s.contains(v.name), "{shell} lacks {}", v.name);
            }
            assert!(s.contains("status --names"), "{shell}");
        }
        assert!(script("tcsh").is_none());
    }
}
