//! The `klinecast` binary: parse the command line, run the command, map errors to exit codes
//! (0 ok, 1 runtime failure, 2 usage or configuration error). Everything else is in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
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

/// `klinecast report | head`: when the reader of stdout goes away, `println!` panics with
/// "failed printing to stdout: Broken pipe". Like other command-line tools, exit quietly (status
/// 0: the reader asked for no more) instead of printing a panic; every other panic is reported
/// as before.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
