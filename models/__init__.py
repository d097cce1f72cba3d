"""Flax (linen) model families that take any initializer and expose every layer to probes."""

from models.activations import Activate as Activate
from models.build import FAMILIES as FAMILIES
from models.build import build as build
from models.build import count_params as count_params
from models.build import per_layer as per_layer
from models.lenet import LeNet5 as LeNet5
from models.mlp import MLP as MLP
from models.plain_cnn import PLAIN_CNN_PRESETS as PLAIN_CNN_PRESETS
from models.plain_cnn import PlainCNN as PlainCNN
from models.resnet import ResNet as ResNet
