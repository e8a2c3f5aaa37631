defmodule ObjectStoreX.SyncHelpers do
  @moduledoc """
  Helpers for the `ObjectStoreX.Sync` tests: a tree of objects of mixed sizes with awkward
  keys, written concurrently, and reading a whole prefix back to compare two sides.
  """

  import ExUnit.Assertions

  @doc """
  `n` objects as `[{key, data}]`: empty ones, one-byte ones, a few KiB, keys with spaces and
  non-ASCII characters, nested several levels deep, and keys that sort between a directory and
  its contents ("a-b" between "a" and "a/b"). `big` more of `big_size` bytes each, whose keys
  sort last.
  """
  def tree(n, big \\ 0, big_size \\ 6 * 1_048_576) do
    small =
      for i <- 1..n//1 do
        key =
          case rem(i, 6) do
            0 -> "dir #{rem(i, 5)}/sub/obj #{i}.bin"
            1 -> "dir #{rem(i, 5)}/obj-#{i}"
            2 -> "nested/a/b/c/#{i}.dat"
            3 -> "ünïcødé/日本/#{i}.txt"
            4 -> "dir #{rem(i, 5)}-x/#{i}"
            5 -> "top-#{i}"
          end

        size =
          case rem(i, 7) do
            0 -> 0
            1 -> 1
            _ -> rem(i * 131, 4096)
          end

        {key, :crypto.strong_rand_bytes(size)}
      end

    large = for i <- 1..big//1, do: {"zz-big/#{i}.bin", :crypto.strong_rand_bytes(big_size)}
    small ++ large
  end

  @doc "Writes every `{key, data}` under `prefix` (nil: the root), 16 at a time."
  def populate!(store, prefix, tree) do
    tree
    |> Task.async_stream(
      fn {key, data} -> :ok = ObjectStoreX.put(store, join(prefix, key), data) end,
      max_concurrency: 16,
      timeout: 60_000
    )
    |> Stream.run()
  end

  @doc "`%{relative_key => data}` of everything under `prefix`."
  def contents(store, prefix) do
    strip = if prefix, do: prefix <> "/", else: ""

    ObjectStoreX.list!(store, prefix: prefix)
    |> Task.async_stream(
      fn meta ->
        {String.replace_prefix(meta.location, strip, ""), ObjectStoreX.get!(store, meta.location)}
      end,
      max_concurrency: 16,
      timeout: 60_000
    )
    |> Map.new(fn {:ok, pair} -> pair end)
  end

  @doc "Asserts that `dest` holds exactly `expected` (`[{key, data}]` or a map) under `prefix`."
  def assert_holds!(dest, prefix, expected) do
    got = contents(dest, prefix)
    expected = Map.new(expected)
    missing = Map.keys(expected) -- Map.keys(got)
    extra = Map.keys(got) -- Map.keys(expected)
    assert missing == [], "missing at the destination: #{inspect(Enum.take(missing, 5))}"
    assert extra == [], "unexpected at the destination: #{inspect(Enum.take(extra, 5))}"

    differing = for {k, v} <- expected, got[k] != v, do: k
    assert differing == [], "bytes differ: #{inspect(Enum.take(differing, 5))}"
  end

  @doc """
  Sends the calling process the per-object events `[:objectstorex, :sync, :object]` of the
  runs it starts, as `{:sync_object, action, key, node, measurements}`.
  """
  def attach_objects(id) do
    parent = self()

    :telemetry.attach(
      id,
      [:objectstorex, :sync, :object],
      fn _event, measurements, metadata, _ ->
        # Only the runs this test started: other async tests sync objects of the same names.
        if parent in (Process.get(:"$callers") || []),
          do:
            send(
              parent,
              {:sync_object, metadata.action, metadata.key, metadata.node, measurements}
            )
      end,
      nil
    )

    ExUnit.Callbacks.on_exit(fn -> :telemetry.detach(id) end)
  end

  @doc "Takes every per-object event from the mailbox: `[{action, key, node}]`."
  def objects_seen(acc \\ []) do
    receive do
      {:sync_object, action, key, node, _m} -> objects_seen([{action, key, node} | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  @doc """
  A telemetry handler that sends `{:telemetry, node, event, metadata}` to the pid given as its
  config; a named function, so that it can be attached on a peer node, which does not have the
  test modules' code.
  """
  def forward(event, _measurements, metadata, pid),
    do: send(pid, {:telemetry, node(), event, metadata})

  def join(nil, key), do: key
  def join(prefix, key), do: prefix <> "/" <> key
end
