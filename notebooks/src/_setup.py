# Set-up: in Colab, fetch the workspace and its pinned requirements; locally, use the installed package.
import os
import subprocess
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tfmot needs Keras 2 (tf_keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if "google.colab" in sys.modules:
    EDGEQUANT_REPO = os.environ.get("EDGEQUANT_REPO", "https://github.com/edgequant/edgequant")
    if not os.path.isdir("edgequant"):
        subprocess.run(["git", "clone", "--depth=1", EDGEQUANT_REPO, "edgequant"], check=True)
    os.chdir("edgequant")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "-r", "requirements.txt"], check=True
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", "."], check=True
    )
    sys.path.insert(0, os.getcwd())
else:
    # Locally the notebook runs from notebooks/; the workspace root holds configs/ and models/.
    root = (
        os.path.abspath(os.path.join(os.getcwd(), ".."))
        if os.path.basename(os.getcwd()) == "notebooks"
        else os.getcwd()
    )
    os.chdir(root)
    sys.path.insert(0, root)
import edgequant

print("edgequant from", os.path.dirname(edgequant.__file__))
