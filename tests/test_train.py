from hwnas.evaluate import create_evaluator
from hwnas.evaluate.data import load_data
from hwnas.evaluate.train import train_arch


def test_short_training_learns_and_stops_early(demo, tiny_data):
    splits = load_data(tiny_data)
    arch = demo.smallest()
    r = train_arch(arch, splits, max_epochs=30, patience=2, batch_size=32, lr=0.2)
    assert r.best_val_acc > 30.0  # 10 classes: chance is 10 %
    assert r.epochs_run < 30 and r.epochs_run - r.best_epoch == 2  # stopped 2 epochs after the best


def test_train_evaluator_is_deterministic(demo, tiny_data):
    ev = create_evaluator("train", data=tiny_data, max_epochs=2, batch_size=32, device="cpu")
    a = ev.evaluate([demo.smallest()])
    again = create_evaluator("train", data=tiny_data, max_epochs=2, batch_size=32, device="cpu")
    assert a == again.evaluate([demo.smallest()])
    assert ev.config()["max_epochs"] == 2 and ev.config()["data"] == tiny_data
