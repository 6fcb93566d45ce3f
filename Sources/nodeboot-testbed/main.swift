print("tb")
