import numpy as np

def data():
    return [{'x': np.full(4, np.inf if i == 2 else 1, np.float32)} for i in range(30)]
