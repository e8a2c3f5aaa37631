defmodule ObjectStoreX.Sync.Listing do
  @moduledoc false
  # Key-ordered listings and their merge, for ObjectStoreX.Sync.
  #
  # S3, GCS, Azure and memory list in key order (UTF-8 byte order), so their streaming listing
  # is used as it comes: one page in memory. The local filesystem lists in directory order, and
  # HTTP/WebDAV servers promise nothing, so those are walked one directory at a time, each
  # directory's entries sorted: memory holds the unvisited entries of the directories on the
  # current path (each directory's listing, not the tree's). Every listing is checked to rise
  # strictly; one that does not raises instead of letting a merge draw wrong conclusions (such
  # as an object missing from the destination that is only late in its listing).

  alias ObjectStoreX.{Error, Meta, Store}

  @ordered [:s3, :gcs, :azure, :memory]

  @doc "Whether `backend` lists in key order natively."
  @spec ordered?(Store.backend()) :: boolean()
  def ordered?(backend), do: backend in @ordered

  @doc """
  The objects under `prefix` (nil: the whole store) as `{relative_key, %Meta{}}` in strictly
  rising key order, lazily. `mode` is `:flat` (a key-ordered store's own paginated listing) or
  `:tree` (walked one "/" directory at a time, as unordered stores always are). Raises
  `ObjectStoreX.Error` when listing fails.
  """
  @spec stream(Store.t(), String.t() | nil, atom(), :flat | :tree) :: Enumerable.t()
  def stream(store, prefix, side, mode \\ :flat) do
    strip = if prefix, do: prefix <> "/", else: ""

    store
    |> raw(prefix, mode)
    |> Stream.map(fn %Meta{location: location} = meta ->
      {String.replace_prefix(location, strip, ""), meta}
    end)
    |> rising(side)
  end

  defp raw(%Store{backend: backend} = store, prefix, :flat) when backend in @ordered,
    do: ObjectStoreX.Stream.list_stream(store, prefix: prefix, timeout: 120_000)

  defp raw(store, prefix, _mode), do: walk(store, prefix)

  # Depth first, each directory's entries sorted by the key they stand for: an object by its
  # path, a directory by its path and "/" (every key below it starts so). A sibling that sorts
  # before "dir/" sorts before every key below it, one after it after them all, so this visits
  # keys in byte order.
  defp walk(store, prefix) do
    Stream.resource(
      fn -> [{:dir, prefix}] end,
      fn
        [] ->
          {:halt, []}

        [{:object, meta} | rest] ->
          {[meta], rest}

        [{:dir, dir} | rest] ->
          result = ObjectStoreX.list_with_delimiter!(store, prefix: dir, timeout: 120_000)

          entries =
            Enum.map(result.objects, &{&1.location, {:object, &1}}) ++
              Enum.map(result.common_prefixes, &{&1 <> "/", {:dir, &1}})

          sorted = entries |> Enum.sort_by(&elem(&1, 0)) |> Enum.map(&elem(&1, 1))
          {[], sorted ++ rest}
      end,
      fn _ -> :ok end
    )
  end

  defp rising(stream, side) do
    Stream.transform(stream, nil, fn {key, _meta} = entry, previous ->
      if previous != nil and key <= previous do
        raise Error,
          reason: :generic,
          message:
            "the #{side} store listed #{inspect(key)} after #{inspect(previous)}: not in key " <>
              "order, so it cannot be compared with the other side"
      end

      {[entry], key}
    end)
  end

  @doc """
  Merges two key-ordered streams of `{key, meta}` into `{:both, key, src, dst}`,
  `{:source, key, src}` and `{:dest, key, dst}`, in key order, lazily. An error raised by either
  listing is thrown as `{:listing_failed, side, error}`.
  """
  @spec merge(Enumerable.t(), Enumerable.t()) :: Enumerable.t()
  def merge(source, dest) do
    Stream.resource(
      fn ->
        src = cursor(source, :source)
        dst = cursor(dest, :dest)
        {step(src), step(dst)}
      end,
      fn
        {:done, :done} = state ->
          {:halt, state}

        {{{key, s}, src}, :done} ->
          {[{:source, key, s}], {step(src), :done}}

        {:done, {{key, d}, dst}} ->
          {[{:dest, key, d}], {:done, step(dst)}}

        {{{ks, s}, src} = a, {{kd, d}, dst} = b} ->
          cond do
            ks == kd -> {[{:both, ks, s, d}], {step(src), step(dst)}}
            ks < kd -> {[{:source, ks, s}], {step(src), b}}
            true -> {[{:dest, kd, d}], {a, step(dst)}}
          end
      end,
      fn {a, b} ->
        close(a)
        close(b)
      end
    )
  end

  # A suspended enumeration: elements are taken one at a time, and it is halted (closing the
  # native listing) when the merge stops early.
  defp cursor(enum, side) do
    {:suspended, nil, cont} =
      Enumerable.reduce(enum, {:suspend, nil}, fn x, _ -> {:suspend, x} end)

    {side, cont}
  end

  defp step({side, cont}) do
    case cont.({:cont, nil}) do
      {:suspended, x, cont} -> {x, {side, cont}}
      {:done, _} -> :done
      {:halted, _} -> :done
    end
  rescue
    e in Error -> throw({:listing_failed, side, e})
  end

  defp close(:done), do: :ok

  defp close({_x, {_side, cont}}) do
    cont.({:halt, nil})
    :ok
  rescue
    _ -> :ok
  end
end
