import torch
from avalanche.benchmarks.classic import SplitMNIST
from avalanche.models import MTSimpleMLP
from avalanche.training import Naive

from alpha_mas_avalanche import AlphaMASPlugin

benchmark = SplitMNIST(n_experiences=5, return_task_id=True, dataset_root="../shared/data/mnist")
model = MTSimpleMLP()
strategy = Naive(model, torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss(),
                 train_mb_size=128, plugins=[AlphaMASPlugin(lambda_reg=5.0)])  # λ: see "Choosing λ"
for experience in benchmark.train_stream:
    strategy.train(experience)
    print(strategy.eval(benchmark.test_stream)["Top1_Acc_Stream/eval_phase/test_stream/Task004"])
