import numpy as np
def samples():
    raise OSError('gone')
