import numpy as np
def samples():
    return None
