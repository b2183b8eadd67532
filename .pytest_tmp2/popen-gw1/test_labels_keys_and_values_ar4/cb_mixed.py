import numpy as np

def data():
    for i in range(30):
        x = np.zeros(4, np.float32)
        yield (x, 1) if i < 5 else x
