"""The shared image callbacks: grid layout, PNG files in the run folder, TensorBoard / W&B hand-off."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from PIL import Image

from tests.fakes import RandomImages, quiet_trainer
from zoo.callbacks import LatentInterpolation, LatentScatter, ReconstructionImages, SampleImages
from zoo.drawing import PALETTE, image_grid, pair_grid, scatter_plot
from zoo.models import VAE, Autoencoder

CELL = 28 + 2  # an image and its padding


def trainer_with(tmp_path, logger, callbacks):
    return L.Trainer(accelerator="cpu", logger=logger, callbacks=callbacks, max_epochs=1, limit_train_batches=1,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     default_root_dir=tmp_path)


def tiny_vae(latent_size=2):
    torch.manual_seed(0)
    return VAE(latent_size=latent_size, hidden_sizes=[16], nll_samples=0)


@pytest.mark.parametrize(("count", "nrow", "rows", "cols"), [(7, None, 3, 3), (1, None, 1, 1), (10, 4, 3, 4), (7, 7, 1, 7)])
def test_grid_layout_for_any_count(count, nrow, rows, cols):
    images = torch.rand(count, 1, 28, 28)
    grid = image_grid(images, nrow=nrow)
    assert grid.shape == (3, 2 + rows * CELL, 2 + cols * CELL)
    # Image i sits at row i // cols, column i % cols; the unused cells of the last row stay blank (1.0).
    for i in range(count):
        r, c = divmod(i, cols)
        assert torch.equal(grid[0, 2 + r * CELL: r * CELL + CELL, 2 + c * CELL: c * CELL + CELL], images[i, 0])
    for i in range(count, rows * cols):
        r, c = divmod(i, cols)
        assert (grid[:, 2 + r * CELL: r * CELL + CELL, 2 + c * CELL: c * CELL + CELL] == 1).all()


def test_pair_grid_puts_each_output_right_of_its_input():
    inputs, outputs = torch.rand(7, 1, 28, 28), torch.rand(7, 1, 28, 28)
    grid = pair_grid(inputs, outputs)
    assert grid.shape == (3, 2 + 3 * CELL, 2 + 6 * CELL)  # 3 pairs per row, 3 rows
    for i in range(7):
        r, c = divmod(i, 3)
        top, left = 2 + r * CELL, 2 + 2 * c * CELL
        assert torch.equal(grid[0, top: top + 28, left: left + 28], inputs[i, 0])
        assert torch.equal(grid[0, top: top + 28, left + CELL: left + CELL + 28], outputs[i, 0])
    with pytest.raises(ValueError, match="differ in shape"):
        pair_grid(inputs, outputs[:6])


def test_scatter_plot_draws_each_class_in_its_colour():
    points = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    picture = scatter_plot(points, torch.tensor([0, 3, 3]), size=200)
    assert picture.size == (200, 200)
    colours = {colour for _, colour in picture.getcolors(maxcolors=10_000)}
    assert PALETTE[0] in colours and PALETTE[3] in colours and PALETTE[1] not in colours
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        scatter_plot(torch.rand(5, 3))


def test_callbacks_write_pngs_into_the_run_folder(tmp_path):
    callbacks = [ReconstructionImages(num_images=7), SampleImages(num_samples=7), LatentInterpolation(num_pairs=3, steps=5),
                 LatentScatter(num_points=16)]
    logger = CSVLogger(tmp_path, name="run")
    trainer = trainer_with(tmp_path, logger, callbacks)
    trainer.fit(tiny_vae(), datamodule=RandomImages())
    folder = tmp_path / "run" / "version_0" / "images"
    assert sorted(p.name for p in folder.iterdir()) == [
        "interpolation_epoch000.png", "latent_scatter_epoch000.png", "reconstructions_epoch000.png", "samples_epoch000.png"]
    sizes = {p.name.split("_epoch")[0]: Image.open(p).size for p in folder.iterdir()}
    assert sizes["reconstructions"] == (2 + 6 * CELL, 2 + 3 * CELL)  # 7 pairs: 3 per row
    assert sizes["samples"] == (2 + 3 * CELL, 2 + 3 * CELL)  # 7 samples: 3 per row
    assert sizes["interpolation"] == (2 + 7 * CELL, 2 + 3 * CELL)  # 3 rows of 5 steps + 2 end points
    assert sizes["latent_scatter"] == (480, 480)


def test_latent_scatter_skips_codes_that_are_not_2d(tmp_path):
    callback = LatentScatter(num_points=16)
    trainer = quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=1, callbacks=[callback])
    trainer.fit(Autoencoder(code_size=3, hidden_sizes=[8]), datamodule=RandomImages())
    assert callback.last_path is None


def test_samples_use_a_fixed_noise_batch_and_leave_the_global_rng_alone(tmp_path):
    model = tiny_vae().eval()
    callback = SampleImages(num_samples=5, seed=3)
    torch.manual_seed(123)
    first = callback.make_image(None, model)
    after = torch.rand(1)
    torch.manual_seed(123)
    torch.rand(1)
    assert torch.equal(first, callback.make_image(None, model))  # same noise batch every time
    torch.manual_seed(123)
    callback.make_image(None, model)
    assert torch.equal(torch.rand(1), after)  # drawing samples consumed no global randomness


def test_images_reach_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = trainer_with(tmp_path, logger, [ReconstructionImages(num_images=4), SampleImages(num_samples=4)])
    trainer.fit(tiny_vae(), datamodule=RandomImages())
    logger.experiment.flush()
    events = EventAccumulator(str(tmp_path / "tb" / "version_0")).Reload()
    assert set(events.Tags()["images"]) == {"reconstructions", "samples"}
    assert (tmp_path / "tb" / "version_0" / "images" / "samples_epoch000.png").exists()


def test_images_reach_wandb(tmp_path, monkeypatch):
    logged = []
    wandb = WandbLogger.__new__(WandbLogger)  # no wandb run: only the hand-off is under test
    monkeypatch.setattr(wandb, "log_image", lambda key, images, step: logged.append((key, images, step)), raising=False)
    trainer = SimpleNamespace(loggers=[wandb], log_dir=str(tmp_path), default_root_dir=str(tmp_path),
                              current_epoch=4, global_step=40)
    path = SampleImages().write(trainer, image_grid(torch.rand(3, 1, 28, 28)))
    assert path == tmp_path / "images" / "samples_epoch004.png" and path.exists()
    [(key, images, step)] = logged
    assert key == "samples" and step == 40 and images[0].size == (2 + 2 * CELL, 2 + 2 * CELL)


@pytest.mark.parametrize(("cls", "kwargs", "match"), [
    (ReconstructionImages, dict(num_images=0), "number of images"),
    (SampleImages, dict(num_samples=0), "num_samples"),
    (LatentInterpolation, dict(steps=1), "steps"),
    (SampleImages, dict(every_n_epochs=0), "every_n_epochs"),
])
def test_bad_arguments_are_refused(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_a_conditional_gan_gets_one_row_per_class(tmp_path):
    from zoo.models import GAN

    torch.manual_seed(0)
    gan = GAN(arch="dcgan", latent_dim=8, channels=4, num_classes=4).eval()
    grid = SampleImages(seed=5, per_class=3).make_image(None, gan)
    assert grid.shape == (3, 2 + 4 * CELL, 2 + 3 * CELL)  # 4 rows (classes) of 3 samples
    labels = torch.arange(4).repeat_interleave(3)
    expected = gan.sample(12, labels=labels, generator=torch.Generator().manual_seed(5))
    for i in range(12):
        r, c = divmod(i, 3)  # row r holds class r
        cell = grid[0, 2 + r * CELL: r * CELL + CELL, 2 + c * CELL: c * CELL + CELL]
        assert torch.allclose(cell, expected[i, 0])
    with pytest.raises(ValueError, match="per_class"):
        SampleImages(per_class=0)


def test_a_conditional_vae_reconstructs_and_interpolates_with_the_images_labels(tmp_path):
    torch.manual_seed(0)
    vae = VAE(latent_size=2, hidden_sizes=[16], nll_samples=0, num_classes=10, test_samples=32)
    callbacks = [ReconstructionImages(num_images=4), SampleImages(per_class=2), LatentInterpolation(num_pairs=2, steps=3),
                 LatentScatter(num_points=16)]
    trainer = trainer_with(tmp_path, CSVLogger(tmp_path, name="run"), callbacks)
    trainer.fit(vae, datamodule=RandomImages())
    folder = tmp_path / "run" / "version_0" / "images"
    sizes = {p.name.split("_epoch")[0]: Image.open(p).size for p in folder.iterdir()}
    assert sizes == {"reconstructions": (2 + 4 * CELL, 2 + 2 * CELL), "samples": (2 + 2 * CELL, 2 + 10 * CELL),
                     "interpolation": (2 + 5 * CELL, 2 + 2 * CELL), "latent_scatter": (480, 480)}
    # The reconstructions are model(x, labels): the right-hand image of each pair.
    vae.eval()
    x, labels = callbacks[0].images(), callbacks[0].labels()
    grid = callbacks[0].make_image(trainer, vae)
    with torch.no_grad():
        expected = vae(x, labels)
    cell = grid[0, 2:CELL, 2 + CELL: 2 * CELL]  # row 0, column 1: the reconstruction of image 0
    assert torch.allclose(cell, expected[0, 0])
    # An interpolation row decodes with its first image's class: its end matches decode(code of image 1, class 0).
    x, labels = callbacks[2].images(), callbacks[2].labels()
    grid = callbacks[2].make_image(trainer, vae)
    with torch.no_grad():
        end = vae.decode(vae.encode(x[1:2], labels[1:2])[0], labels[0:1])
    assert torch.allclose(grid[0, 2:CELL, 2 + 3 * CELL: 4 * CELL], end[0, 0])
