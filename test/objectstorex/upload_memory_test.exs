defmodule ObjectStoreX.UploadMemoryTest do
  # An upload driven from Elixir borrows the caller's binaries without copying them. Once a
  # part is written they are freed on the caller's scheduler, so the binaries alive stay within
  # the upload's bound, `(max_concurrency + 1)` parts plus a chunk, however long parts take.
  # Not async: `:erlang.memory(:binary)` counts every process's binaries.
  use ExUnit.Case, async: false

  @mib 1_048_576

  @tag :tmp_dir
  test "fresh binaries uploaded to a local store stay within the bound", %{tmp_dir: dir} do
    store = ObjectStoreX.new!(:local, root: dir)
    part = 8 * @mib
    :erlang.garbage_collect()
    base = :erlang.memory(:binary)
    sampler = spawn_link(fn -> sample(base, 0) end)

    source = Stream.repeatedly(fn -> :crypto.strong_rand_bytes(@mib) end) |> Stream.take(160)

    assert :ok =
             ObjectStoreX.Stream.upload(source, store, "big.bin",
               part_size: part,
               max_concurrency: 2
             )

    send(sampler, {:stop, self()})
    assert_receive {:peak, peak}, 5_000

    # Three parts and a chunk, with 4 MiB for what the rest of the VM holds meanwhile.
    assert peak <= 3 * part + @mib + 4 * @mib,
           "binaries peaked #{div(peak, @mib)} MiB above the start"

    assert File.stat!(Path.join(dir, "big.bin")).size == 160 * @mib
  end

  defp sample(base, peak) do
    receive do
      {:stop, from} -> send(from, {:peak, peak})
    after
      1 -> sample(base, max(peak, :erlang.memory(:binary) - base))
    end
  end
end
