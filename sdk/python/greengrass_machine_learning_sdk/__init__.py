"""
Greengrass Machine Learning SDK surface for icc.

Drop-in replacement for the AWS IoT Greengrass Machine Learning SDK as used by Lambda functions that call the
Image Classification connector: ``client('inference').invoke_inference_service(...)``. It speaks the Greengrass
IPC protocol (Lambda-invoke style HTTP on localhost) that ``icc serve --ipc-port`` answers, and that a
Greengrass V1 core answered. Standard library only.
"""

from greengrass_machine_learning_sdk.exception import (
    GreengrassDependencyException,
    GreengrassInferenceException,
)
from greengrass_machine_learning_sdk.inference import Client as _InferenceClient

__version__ = '1.2.0'

__all__ = [
    'client',
    'GreengrassDependencyException',
    'GreengrassInferenceException',
]

_CLIENTS = {
    'inference': _InferenceClient,
}


def client(client_type, *args, **kwargs):
    """Create a client; ``client_type`` must be 'inference'."""
    if client_type not in _CLIENTS:
        raise ValueError(
            'client_type {!r} is not supported; the Greengrass Machine Learning SDK provides: {}'.format(
                client_type, ', '.join(sorted(_CLIENTS))
            )
        )
    return _CLIENTS[client_type](*args, **kwargs)
