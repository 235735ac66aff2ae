fn main() -> roost_cli::Result<()> {
    roost_cli::main()
}
