import numpy as np
def samples():
    while True:
        yield np.zeros((8, 8, 3), np.float32), 0
