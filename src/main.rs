//! Entry point: chooses between the daemon, `corral check`, `schema`,
//! `completions`, the svctl client and the prepare helper by argv[0] and
//! subcommand, and turns the result into an exit code.

use corral::cli::{self, Command};

// See Cargo.toml and corral::allocator: musl's own malloc returns freed
// memory to the kernel eagerly, and corral's TOML and JSON paths pay page
// faults for it.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: corral::allocator::Allocator = corral::allocator::Allocator::new();

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rest = args.get(1..).unwrap_or_default();
    let code = if invoked_as == "svctl" {
        corral::ctl::main(rest)
    } else if rest.first().map(String::as_str) == Some("__prepare") {
        // A service's [[prepare]] steps, in a helper corral started.
        corral::prepare::main()
    } else {
        match cli::parse(rest, |k| std::env::var(k).ok()) {
            Ok(Command::Run(opts)) => corral::runtime::boot::run(opts),
            Ok(Command::Check {
                services_dir,
                named,
            }) => corral::check::run(&services_dir, named),
            Ok(Command::Ctl(args)) => corral::ctl::main(&args),
            Ok(Command::Schema) => corral::config::schema::print(),
            Ok(Command::Completions(shell)) => corral::completions::print(&shell),
            Ok(Command::Import { kind, file, out }) => {
                corral::import::run(kind, &file, out.as_deref())
            }
            Ok(Command::Help) => {
                println!("{}", cli::USAGE);
                0
            }
            Ok(Command::Version) => {
                println!("corral {}", env!("CARGO_PKG_VERSION"));
                0
            }
            Err(e) => {
                eprintln!("corral: {e}\n\n{}", cli::USAGE);
                corral::runtime::EXIT_CONFIG
            }
        }
    };
    std::process::exit(code);
}
