defmodule ObjectStoreX.Sync.Listing do
  @moduledoc false
  # Key-ordered listings and their merge, for ObjectStoreX.Sync.
  #
  # S3, GCS, Azure and memory list in key order (UTF-8 byte order), so their streaming listing
  # is used as it comes: one page in memory. The local filesystem lists in directory order, and
  # HTTP/WebDAV servers promise nothing, so those are walked depth first, each directory's
  # entries sorted, the next few directories listed concurrently ahead of the walk: memory holds
  # the unvisited entries of the directories on the current path and those listed ahead (not
  # the tree's). Every listing is checked to rise
  # strictly; one that does not raises instead of letting a merge draw wrong conclusions (such
  # as an object missing from the destination that is only late in its listing).
  #
  # `ahead/2` runs a listing in a process of its own, a bounded number of entries ahead of its
  # consumer, so that the source and destination are listed at the same time.

  alias ObjectStoreX.{Error, Meta, Store}

  @ordered [:s3, :gcs, :azure, :memory]

  # Entries a listing process hands over at a time: one page of an S3 listing.
  @chunk 1_000
  # Directories a :tree walk lists ahead of the one it is in.
  @tree_ahead 8

  @doc "Whether `backend` lists in key order natively."
  @spec ordered?(Store.backend()) :: boolean()
  def ordered?(backend), do: backend in @ordered

  @doc """
  The objects under `prefix` (nil: the whole store) as `{relative_key, %Meta{}}` in strictly
  rising key order, lazily. `mode` is `:flat` (a key-ordered store's own paginated listing) or
  `:tree` (walked by "/" directory, as unordered stores always are). Raises
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
  #
  # `ahead` holds the directories not yet visited, in the order they will be; the next 8 of
  # them (@tree_ahead) are listed concurrently while the walk emits what comes before them, each
  # listing held until the walk reaches its directory. A directory found since goes in front of
  # the ones already listed, which stay held: at most 8 listings are started at each level of
  # the current path.
  defp walk(store, prefix) do
    Stream.resource(
      fn -> %{pending: [{:dir, prefix}], ahead: [prefix], listing: %{}} end,
      fn
        %{pending: []} = st ->
          {:halt, st}

        %{pending: [{:object, meta} | rest]} = st ->
          {[meta], %{st | pending: rest}}

        %{pending: [{:dir, dir} | rest], ahead: [dir | ahead]} = st ->
          # Its siblings are listed while this one is awaited.
          st = list_ahead(st, store)
          {task, listing} = Map.pop!(st.listing, dir)
          result = await_listing(task)

          entries =
            Enum.map(result.objects, &{&1.location, {:object, &1}}) ++
              Enum.map(result.common_prefixes, &{&1 <> "/", {:dir, &1}})

          sorted = entries |> Enum.sort_by(&elem(&1, 0)) |> Enum.map(&elem(&1, 1))
          dirs = for {:dir, d} <- sorted, do: d
          st = %{st | pending: sorted ++ rest, ahead: dirs ++ ahead, listing: listing}
          {[], list_ahead(st, store)}
      end,
      fn st -> Enum.each(Map.values(st.listing), &Task.shutdown(&1, :brutal_kill)) end
    )
  end

  # Starts the listing of each of the next directories not yet started.
  defp list_ahead(st, store) do
    st.ahead
    |> Enum.take(@tree_ahead)
    |> Enum.reduce(st, fn dir, st ->
      if Map.has_key?(st.listing, dir) do
        st
      else
        task =
          Task.async(fn ->
            ObjectStoreX.list_with_delimiter(store, prefix: dir, timeout: 120_000)
          end)

        %{st | listing: Map.put(st.listing, dir, task)}
      end
    end)
  end

  defp await_listing(task) do
    case Task.await(task, :infinity) do
      {:ok, result} -> result
      {:error, %Error{} = e} -> raise e
    end
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
  `enum` (a listing of `stream/4`) enumerated in a process of its own, linked to and monitored
  by the caller, ahead of it by a bounded amount: at most three chunks of #{@chunk} entries
  exist at once, the one the caller takes from, one waiting in its mailbox and one being
  filled. An `ObjectStoreX.Error` raised by the
  listing is raised again in the caller, as is anything else it raises, throws or exits with;
  a listing process that goes down without finishing is an error, never the listing's end.
  Halting the stream early (or a failure) ends the listing process and leaves no message of it
  in the caller's mailbox.
  """
  @spec ahead(Enumerable.t(), String.t()) :: Enumerable.t()
  def ahead(enum, side) do
    Stream.resource(
      fn -> start_ahead(enum) end,
      &next_ahead(&1, side),
      &stop_ahead/1
    )
  end

  defp start_ahead(enum) do
    consumer = self()
    ref = make_ref()
    {pid, monitor} = :erlang.spawn_opt(fn -> lister(consumer, ref, enum) end, [:link, :monitor])
    %{pid: pid, ref: ref, monitor: monitor, done: false}
  end

  defp next_ahead(%{done: true} = st, _side), do: {:halt, st}

  defp next_ahead(%{pid: pid, ref: ref, monitor: monitor} = st, side) do
    receive do
      {^ref, :chunk, chunk} ->
        # Taking a chunk lets the listing send the next one, filled meanwhile.
        send(pid, {ref, :more})
        {chunk, st}

      {^ref, :done} ->
        {:halt, %{st | done: true}}

      {^ref, {:error, %Error{} = e}} ->
        raise e

      {^ref, {:raised, kind, reason, stack}} ->
        :erlang.raise(kind, reason, stack)

      {:DOWN, ^monitor, :process, ^pid, reason} ->
        raise Error,
          reason: :internal,
          message: "the #{side} listing stopped before its end: #{inspect(reason, limit: 5)}"
    end
  end

  # The caller is done with the listing, whether it reached its end or not: the process goes
  # (cancelling its native listing) and whatever it sent is dropped. Called again for the same
  # listing (a merge closes a side whose listing already raised), it returns at once: each call
  # waits on a monitor of its own.
  defp stop_ahead(%{pid: pid, ref: ref, monitor: monitor}) do
    Process.unlink(pid)
    gone = Process.monitor(pid)
    Process.exit(pid, :kill)

    receive do
      {:DOWN, ^gone, :process, ^pid, _} -> :ok
    end

    Process.demonitor(monitor, [:flush])
    flush(ref)
  end

  defp flush(ref) do
    receive do
      {^ref, _} -> flush(ref)
      {^ref, _, _} -> flush(ref)
    after
      0 -> :ok
    end
  end

  defp lister(consumer, ref, enum) do
    result =
      try do
        enum
        |> Stream.chunk_every(@chunk)
        |> Enum.reduce(1, fn chunk, credit ->
          credit = if credit == 0, do: await_more(ref), else: credit
          send(consumer, {ref, :chunk, chunk})
          credit - 1
        end)

        :done
      rescue
        e in Error -> {:error, e}
      catch
        kind, reason -> {:raised, kind, reason, __STACKTRACE__}
      end

    send(consumer, {ref, result})
    # Ending unlinked: a consumer that traps exits gets no exit message of a listing that ended.
    Process.unlink(consumer)
  end

  defp await_more(ref) do
    receive do
      {^ref, :more} -> 1
    end
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
