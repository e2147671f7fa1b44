fn main() -> std::process::ExitCode {
    sluice::commands::main()
}
