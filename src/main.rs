// mimalloc: policy evaluation and YAML parsing spend about a third of their
// time in glibc's malloc and free (perf, `validate` of 5,000 files).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sluice::commands::main()
}
