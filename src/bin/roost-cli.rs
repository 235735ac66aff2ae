fn main() -> std::process::ExitCode {
    roost_cli::exit_code(roost_cli::main())
}
