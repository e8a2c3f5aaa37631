defmodule ObjectStoreX.OptionsSweepTest do
  # Random combinations of the streaming options (chunk size, prefetch, concurrency, range,
  # gzip lines) and of how the consumer stops, on every available backend: each must give the
  # bytes or lines asked for, or :invalid_range for a range that starts past the end, and leave
  # nothing in the mailbox. Such a sweep found suffix ranges answered differently by each
  # backend (:generic, :invalid_range, :not_supported or the bytes).
  #
  #   OBJECTSTOREX_SWEEP_SEED   replay a seed (printed with every failure)
  use ExUnit.Case, async: false

  alias ObjectStoreX.{Error, TestBackends}
  alias ObjectStoreX.Stream, as: OSXStream

  import ObjectStoreX.TestHelpers, only: [drain_mailbox: 1, random_bytes: 1]

  @moduletag timeout: 600_000
  @cases_per_backend 60
  @sizes [0, 1, 4095, 70_001]

  test "random streaming options give exact results and leave no message behind" do
    seed =
      String.to_integer(System.get_env("OBJECTSTOREX_SWEEP_SEED", "#{:rand.uniform(99_999)}"))

    :rand.seed(:exsss, {seed, seed, seed})

    failures =
      for backend <- TestBackends.available(),
          failure <- sweep(backend, TestBackends.store!(backend)),
          do: failure

    assert failures == [],
           "seed #{seed} (OBJECTSTOREX_SWEEP_SEED=#{seed} to replay):\n" <>
             Enum.join(failures, "\n")
  end

  defp sweep(backend, store) do
    objects = Map.new(@sizes, &{&1, random_bytes(&1)})
    for {size, data} <- objects, do: :ok = ObjectStoreX.put(store, "sweep/#{size}", data)

    # Empty lines, CRLF and a last line without its newline.
    text =
      Enum.map_join(1..2_000, "", &if(rem(&1, 7) == 0, do: "\r\n", else: "line #{&1}\n")) <>
        "last"

    {first, second} = String.split_at(text, 5_000)
    :ok = ObjectStoreX.put(store, "sweep/text", text)
    :ok = ObjectStoreX.put(store, "sweep/text.gz", :zlib.gzip(first) <> :zlib.gzip(second))
    lines = String.split(text, ~r/\r?\n/)

    for _ <- 1..@cases_per_backend,
        failure = run_case(backend, store, objects, lines),
        do: failure
  end

  defp run_case(backend, store, objects, lines) do
    kind = Enum.random([:download, :download, :lines, :gzip_lines])
    size = Enum.random(@sizes)
    range = if kind == :download, do: Enum.random(ranges(size))
    consumer = Enum.random([:all, {:take, 2}, :raise])

    opts =
      [
        chunk_size: Enum.random([if(size <= 4095, do: 7, else: 4096), 4096, 65_536, nil]),
        prefetch: Enum.random([nil, 1, 2, 3, 4, 8, 16]),
        concurrency: Enum.random([nil, 1, 2, 5]),
        range: range,
        timeout: 20_000
      ]
      |> Enum.reject(&match?({_, nil}, &1))

    {stream, want} =
      case kind do
        :download ->
          {OSXStream.download(store, "sweep/#{size}", opts), expected(objects[size], range)}

        :lines ->
          {OSXStream.lines(store, "sweep/text", opts), lines}

        :gzip_lines ->
          {OSXStream.lines(store, "sweep/text.gz", [decompress: :gzip] ++ opts), lines}
      end

    got = consume(stream, consumer)
    left = drain_mailbox(0)

    unless exact?(got, want, kind, consumer) and left == [] do
      inspect({backend, kind, size, opts, consumer}) <>
        " -> " <> inspect(got, limit: 4, printable_limit: 80) <> ", left " <> inspect(left)
    end
  end

  defp ranges(size),
    do: [nil, nil, {0, 0}, {3, size + 10}, {:suffix, 17}, {:suffix, 0}, {:offset, 3}]

  # What object_store's ranges mean (`GetRange::as_range`): a range starting at or past the
  # end is invalid, a suffix longer than the object is all of it.
  defp expected(data, nil), do: data

  defp expected(data, {:suffix, n}),
    do: binary_part(data, max(byte_size(data) - n, 0), min(n, byte_size(data)))

  defp expected(data, {:offset, n}) when n < byte_size(data),
    do: binary_part(data, n, byte_size(data) - n)

  defp expected(data, {first, last}) when is_integer(first) and first < byte_size(data),
    do: binary_part(data, first, min(last, byte_size(data) - 1) - first + 1)

  defp expected(_data, _range), do: :invalid_range

  defp consume(stream, :all), do: wrap(fn -> Enum.to_list(stream) end)
  defp consume(stream, {:take, n}), do: wrap(fn -> Enum.take(stream, n) end)

  defp consume(stream, :raise) do
    wrap(fn ->
      try do
        Enum.each(stream, fn _ -> raise ArgumentError, "consumer" end)
        :ran_through
      rescue
        ArgumentError -> :stopped
      end
    end)
  end

  defp wrap(fun) do
    {:ok, fun.()}
  rescue
    e in Error -> {:error, e.reason}
  end

  defp exact?({:error, :invalid_range}, :invalid_range, :download, _), do: true
  defp exact?({:error, _}, _want, _kind, _consumer), do: false
  defp exact?({:ok, _}, :invalid_range, _kind, _consumer), do: false
  defp exact?({:ok, :stopped}, want, _kind, :raise), do: want not in ["", []]
  defp exact?({:ok, :ran_through}, want, _kind, :raise), do: want in ["", []]

  defp exact?({:ok, chunks}, want, :download, {:take, n}) do
    got = IO.iodata_to_binary(chunks)
    length(chunks) <= n and binary_part(want, 0, min(byte_size(got), byte_size(want))) == got
  end

  defp exact?({:ok, chunks}, want, :download, :all), do: IO.iodata_to_binary(chunks) == want
  defp exact?({:ok, got}, want, _lines, {:take, n}), do: got == Enum.take(want, n)
  defp exact?({:ok, got}, want, _lines, :all), do: got == want
end
