fn main() {
    std::process::exit(vine::worker::remote::main_with_args(
        std::env::args().collect(),
    ));
}
