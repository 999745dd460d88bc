from deploy.bench.run import main

main()
