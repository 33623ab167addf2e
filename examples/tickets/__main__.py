from examples.tickets.server import main

main()
