import numpy as np

def data():
    return [(np.zeros(4, np.float32), -1 if i == 7 else i % 3) for i in range(30)]
