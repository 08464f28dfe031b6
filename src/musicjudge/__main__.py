from musicjudge.cli.main import main

main()
