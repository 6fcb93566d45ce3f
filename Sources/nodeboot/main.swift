print("nodeboot")
