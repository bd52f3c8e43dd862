fn main() -> std::process::ExitCode {
    soundlake::cli::main()
}
