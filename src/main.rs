//! The `klinecast` binary: parse the command line, run the command, map errors to exit codes
//! (0 ok, 1 runtime failure, 2 usage or configuration error). Everything else is in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let Ok(args) = args else {
        eprintln!("klinecast: error: arguments must be valid UTF-8");
        return ExitCode::from(2);
    };
    let result = klinecast::cli::parse(&args, &|name| std::env::var(name).ok())
        .and_then(|command| klinecast::run(&command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("klinecast: error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
