defmodule ObjectStoreX.Fuzz do
  @moduledoc """
  Seeded random calls with hostile arguments against every public function of `ObjectStoreX`
  and `ObjectStoreX.Stream`, checking the library's promises:

    * a non-bang function returns `:ok`, `{:ok, ...}` or `{:error, %ObjectStoreX.Error{}}` in
      its documented shape, and never raises, throws or exits;
    * a bang function and a stream (built or enumerated) raise only `%ObjectStoreX.Error{}`;
    * the calling process's mailbox is empty after every call, and stays empty;
    * every call returns within a generous bound.

  It runs in a child VM (`main/0`, started by test/objectstorex/fuzz_test.exs) so that a VM
  abort fails the test instead of killing it. Before each call the child appends the call to a
  log file with unbuffered writes, so the call in flight when the VM died survives it.

  The calls are generated from the seed alone, never from results, so call `i` of a seed is
  always the same call: a run can resume after call `i` (`from`) or replay only it (`only`).
  Stores are memory and local (under the run's directory), plus S3 and HTTP stores aimed at
  a closed loopback port; no request leaves the machine. Objects are small, so that huge
  size options exercise the library's handling of them, not real allocations.
  """

  alias ObjectStoreX.{Error, ListResult, Meta, PutResult, Store}

  @kib 1024
  @mib 1_048_576
  # Far above what any call here needs (they take milliseconds); reaching it means a hang.
  @call_bound_ms 10_000
  # Late messages are looked for once per batch rather than after a wait per call.
  @batch 50
  # Deletes and renames remove fixtures; putting them back keeps most reads meaningful.
  @refresh_every 100

  # Call's message for a NIF badarg, which it attributes to a store or upload of the wrong kind.
  # Every argument is validated before a NIF call; a NIF badarg means validation missed one.
  @badarg "the native library refused an argument that passed validation"

  @fixture_paths [
    "fx/empty",
    "fx/small.txt",
    "fx/lines.txt",
    "fx/long.bin",
    "fx/data.gz",
    "fx/dir/a",
    "fx/dir/sub/b"
  ]

  # ---------------------------------------------------------------------------------------------
  # Child entry point

  @doc """
  Runs the calls described by `OBJECTSTOREX_FUZZ_CHILD` ("seed:calls:from:only:dir"), prints
  each class of findings and a summary line, and halts with status 0; any other status means
  the VM died. Findings are also appended to `dir/findings.etf` as they are made, so that those
  of a child that dies are not lost (see `read_findings/1`).
  """
  def main do
    [seed, calls, from, only, dir] =
      String.split(System.fetch_env!("OBJECTSTOREX_FUZZ_CHILD"), ":", parts: 5)

    [seed, calls, from, only] = Enum.map([seed, calls, from, only], &String.to_integer/1)
    only = if only > 0, do: only

    {findings, executed} = run(seed, calls, from, only, dir)
    classes = classify(findings)

    IO.puts(format_classes(classes, seed))

    IO.puts(
      "FUZZ SUMMARY seed=#{seed} from=#{from} calls=#{calls} executed=#{executed} " <>
        "findings=#{length(findings)} classes=#{length(classes)}"
    )

    System.halt(0)
  end

  defp run(seed, calls, from, only, dir) do
    ctx = setup(dir)
    # Raw files write straight through to the OS, so what was written survives an abort.
    {:ok, log} = :file.open(Path.join(dir, "calls.log"), [:append, :raw, :binary])
    {:ok, out} = :file.open(Path.join(dir, "findings.etf"), [:append, :raw, :binary])
    :rand.seed(:exsss, seed)

    # Generation consumes the random state identically whether or not a call is executed.
    planned =
      for i <- 1..calls do
        call = gen_call(ctx)
        if (only && i == only) || (is_nil(only) && i >= from), do: {i, call}
      end
      |> Enum.reject(&is_nil/1)

    findings =
      planned
      |> Enum.chunk_every(@batch)
      |> Enum.flat_map(fn batch ->
        {i0, _} = hd(batch)
        if rem(i0 - 1, @refresh_every) < @batch, do: put_fixtures(ctx)
        run_batch(batch, log, out)
      end)

    :file.close(log)
    :file.close(out)
    {findings, length(planned)}
  end

  # ---------------------------------------------------------------------------------------------
  # Shrinking: the first call of each class, with options and list elements dropped one at a
  # time while the same class still appears. It is done at once, since a later VM death would
  # lose it. The result joins its class with a count of 0, and wins as its shortest
  # reproduction. Hangs are not shrunk: each try would cost the call bound.

  defp shrink_new(found) do
    for f <- found,
        not String.starts_with?(f.signature, "hang "),
        Process.put({__MODULE__, :seen, f.signature}, true) == nil do
      call = shrink(f.call, f.signature, length(f.call.args) - 1)
      %{f | call: call, repro: render(call), count: 0, funs: []}
    end
  end

  defp shrink(call, _sig, pos) when pos < 0, do: call

  defp shrink(call, sig, pos) do
    arg = Enum.at(call.args, pos)

    if proper_list?(arg) and length(arg) < 50 do
      call = drop_elements(call, sig, pos, arg, 0)
      shrink(call, sig, pos - 1)
    else
      shrink(call, sig, pos - 1)
    end
  end

  defp drop_elements(call, _sig, _pos, list, at) when at >= length(list), do: call

  defp drop_elements(call, sig, pos, list, at) do
    smaller = List.delete_at(list, at)
    candidate = %{call | args: List.replace_at(call.args, pos, smaller)}

    if reproduces?(candidate, sig),
      do: drop_elements(candidate, sig, pos, smaller, at),
      else: drop_elements(call, sig, pos, list, at + 1)
  end

  defp proper_list?([]), do: true
  defp proper_list?([_ | tail]), do: proper_list?(tail)
  defp proper_list?(_), do: false

  defp reproduces?(call, sig) do
    {{i, call, pid}, found} = run_call(0, call)

    late =
      if pid do
        Process.sleep(20)
        late_findings(i, call, pid)
      else
        []
      end

    Enum.any?(found ++ late, &(&1.signature == sig))
  end

  defp frame_term(term) do
    bin = :erlang.term_to_binary(term)
    <<byte_size(bin)::32, bin::binary>>
  end

  @doc "The findings appended to `dir/findings.etf` by every child of a run."
  def read_findings(dir) do
    case File.read(Path.join(dir, "findings.etf")) do
      {:ok, data} -> unframe(data, [])
      {:error, _} -> []
    end
  end

  defp unframe(<<size::32, bin::binary-size(size), rest::binary>>, acc),
    do: unframe(rest, [:erlang.binary_to_term(bin) | acc])

  # A record cut short by the abort is dropped.
  defp unframe(_rest, acc), do: Enum.reverse(acc)

  defp run_batch(batch, log, out) do
    record = fn found ->
      found = found ++ shrink_new(found)
      for f <- found, do: :ok = :file.write(out, frame_term(Map.delete(f, :call)))
      found
    end

    {workers, findings} =
      Enum.map_reduce(batch, [], fn {i, call}, acc ->
        :ok = :file.write(log, "CALL #{i} #{render(call)}\n")
        started = System.monotonic_time(:millisecond)
        {worker, found} = run_call(i, call)
        record.(found)
        :ok = :file.write(log, "END #{i} #{System.monotonic_time(:millisecond) - started} ms\n")
        {worker, found ++ acc}
      end)

    # Anything that reached a caller after its call returned is a leak as well.
    Process.sleep(20)

    late = for {i, call, pid} <- workers, pid != nil, do: late_findings(i, call, pid)
    Enum.reverse(findings) ++ record.(List.flatten(late))
  end

  defp late_findings(i, call, pid) do
    ref = Process.monitor(pid)
    send(pid, {:report, self()})

    found =
      receive do
        {:late, ^pid, []} -> []
        {:late, ^pid, messages} -> [finding(i, call, :late_message, messages)]
      after
        5_000 -> []
      end

    Process.exit(pid, :kill)

    receive do
      {:DOWN, ^ref, _, _, _} -> :ok
    end

    found
  end

  # When one stream of a Stream.zip/2 raises, Elixir 1.14 does not close the others (it halts
  # fresh enumerations of them instead), so their read-ahead stays in the mailbox; that is
  # Elixir's to mend, and documented in ObjectStoreX.Stream, so it is not counted here.
  defp zip_raised?(call, outcome),
    do: Map.get(call, :mode) == :zip and match?({:caught, _, _, _}, outcome)

  # Each call runs in a fresh process, whose mailbox is the caller's, so a leftover message
  # belongs to exactly one call. The process waits after the call until asked for late messages.
  defp run_call(i, call) do
    parent = self()

    {pid, ref} =
      spawn_monitor(fn ->
        outcome =
          try do
            {:returned, execute(call)}
          catch
            kind, reason -> {:caught, kind, reason, __STACKTRACE__}
          end

        {:messages, now} = Process.info(self(), :messages)
        send(parent, {:done, self(), outcome, now})

        receive do
          {:report, from} ->
            {:messages, late} = Process.info(self(), :messages)
            send(from, {:late, self(), late})
            Process.sleep(:infinity)
        end
      end)

    receive do
      {:done, ^pid, outcome, now} ->
        Process.demonitor(ref, [:flush])

        if zip_raised?(call, outcome) do
          Process.exit(pid, :kill)
          {{i, call, nil}, judge(i, call, outcome)}
        else
          stray = if now == [], do: [], else: [finding(i, call, :stray_message, now)]
          {{i, call, pid}, judge(i, call, outcome) ++ stray}
        end

      {:DOWN, ^ref, _, _, reason} ->
        {{i, call, nil}, [finding(i, call, :process_died, reason)]}
    after
      @call_bound_ms ->
        Process.exit(pid, :kill)

        receive do
          {:DOWN, ^ref, _, _, _} -> :ok
        end

        {{i, call, nil}, [finding(i, call, :hang, "no return within #{@call_bound_ms} ms")]}
    end
  end

  # ---------------------------------------------------------------------------------------------
  # Executing and judging a call

  defp execute(%{kind: :sink, args: args, chunks: chunks}) do
    Enum.into(chunks, apply(ObjectStoreX.Stream, :upload_sink, args))
  end

  defp execute(%{kind: :stream, fun: fun, args: args, mode: mode}) do
    consume(apply(ObjectStoreX.Stream, fun, args), mode)
  end

  # A network store that builds is also asked for one object, when every address it has is on
  # this machine: settings that object_store sends unescaped once made every request panic.
  defp execute(%{mod: ObjectStoreX, fun: :new, args: [provider, opts]} = call) do
    case apply(ObjectStoreX, :new, call.args) do
      {:ok, store} = built ->
        if loopback_only?(provider, opts) do
          case ObjectStoreX.head(store, "fuzz/probe", timeout: 2_000) do
            {:error, %Error{reason: :internal}} = error -> error
            _ -> built
          end
        else
          built
        end

      other ->
        other
    end
  end

  defp execute(%{mod: mod, fun: fun, args: args}), do: apply(mod, fun, args)

  @loopback ["127.0.0.1", "localhost", "::1", "[::1]"]
  # Addresses a user may mistype, all of this machine if they are read as addresses at all.
  @malformed_loopback [
    "127.0.0.1:1",
    "localhost:1/x",
    "http://127.0.0.1:1/ x",
    "http://127.0.0.1:1?x=1",
    "http://127.0.0.1:1#f",
    "http://",
    "mailto:x"
  ]

  defp loopback_only?(provider, opts) when provider in [:s3, :azure, :http] and is_list(opts) do
    address = if provider == :http, do: opts[:url], else: opts[:endpoint]
    emulator? = provider == :azure and opts[:use_emulator] == true and address == nil

    (emulator? or loopback?(address)) and (opts[:proxy_url] == nil or loopback?(opts[:proxy_url]))
  end

  defp loopback_only?(_provider, _opts), do: false

  defp loopback?(url) when url in @malformed_loopback, do: true
  defp loopback?(url) when is_binary(url), do: URI.parse(url).host in @loopback
  defp loopback?(_url), do: false

  defp consume(_stream, :build), do: :built
  defp consume(stream, :to_list), do: Enum.to_list(stream)
  defp consume(stream, :take1), do: Enum.take(stream, 1)
  defp consume(stream, :run), do: Stream.run(stream)

  defp consume(stream, :halt2),
    do:
      Enum.reduce_while(stream, 0, fn _, n -> if n >= 1, do: {:halt, n}, else: {:cont, n + 1} end)

  defp consume(stream, :twice), do: {Enum.take(stream, 1), Enum.to_list(stream)}
  defp consume(stream, :zip), do: Enum.take(Stream.zip(stream, stream), 3)

  defp judge(i, call, outcome) do
    case error_of(outcome) do
      # `:internal` is documented as a bug in ObjectStoreX, such as a native panic.
      %Error{reason: :internal} = e ->
        [finding(i, call, :internal_error, e.message)]

      # A value the native side cannot take (a NIF badarg) that validation let through.
      %Error{message: @badarg <> _} = e ->
        [finding(i, call, :validation_gap, e.message)]

      _ ->
        judge_outcome(i, call, outcome)
    end
  end

  defp error_of({:returned, {:error, %Error{} = e}}), do: e
  defp error_of({:caught, :error, %Error{} = e, _}), do: e
  defp error_of(_), do: nil

  defp judge_outcome(i, %{kind: :plain} = call, {:returned, value}) do
    if shape_ok?(call.fun, value), do: [], else: [finding(i, call, :bad_return, value)]
  end

  defp judge_outcome(_i, _call, {:returned, _value}), do: []

  # Bang functions and streams raise the library's error, by design.
  defp judge_outcome(_i, %{kind: kind}, {:caught, :error, %Error{}, _})
       when kind in [:bang, :stream, :sink],
       do: []

  defp judge_outcome(i, call, {:caught, kind, reason, stack}),
    do: [finding(i, call, :raised, {kind, reason, stack})]

  defp shape_ok?(_fun, {:error, %Error{}}), do: true
  defp shape_ok?(fun, value), do: ok_shape?(fun, value)

  defp ok_shape?(fun, {:ok, %Store{}}) when fun in [:new, :from_url], do: true

  defp ok_shape?(fun, :ok)
       when fun in [
              :put,
              :delete,
              :copy,
              :rename,
              :copy_if_not_exists,
              :rename_if_not_exists,
              :upload
            ],
       do: true

  defp ok_shape?(:put_with_result, {:ok, %PutResult{}}), do: true
  defp ok_shape?(:get, {:ok, data, %Meta{}}) when is_binary(data), do: true
  defp ok_shape?(:head, {:ok, %Meta{}}), do: true
  defp ok_shape?(:download_file, {:ok, %Meta{}}), do: true
  defp ok_shape?(:get_ranges, {:ok, list}) when is_list(list), do: Enum.all?(list, &is_binary/1)

  defp ok_shape?(:delete_many, {:ok, n, failed}) when is_integer(n) and is_list(failed),
    do: true

  defp ok_shape?(:list, {:ok, list}) when is_list(list), do: Enum.all?(list, &match?(%Meta{}, &1))
  defp ok_shape?(:list_with_delimiter, {:ok, %ListResult{}}), do: true
  defp ok_shape?(fun, {:ok, %{bytes: _}}) when fun in [:upload_file, :transfer], do: true
  defp ok_shape?(:sign_url, {:ok, url}) when is_binary(url), do: true
  defp ok_shape?(_fun, _value), do: false

  # A finding is recorded at once as a class of one: plain data, without the call's values.
  defp finding(i, call, what, detail) do
    f = %{i: i, call: call, what: what, detail: detail}

    %{
      call: call,
      signature: signature(f),
      count: 1,
      funs: [fun_name(call)],
      detail: describe(f),
      repro: render(call),
      index: i
    }
  end

  # ---------------------------------------------------------------------------------------------
  # Findings: one class per kind of failure and place, with its shortest reproduction

  @doc "Merges findings (or classes) of the same signature, keeping the shortest reproduction."
  def classify(findings) do
    findings
    |> Enum.group_by(& &1.signature)
    |> Enum.map(fn {_sig, group} ->
      shortest = Enum.min_by(group, &byte_size(&1.repro))

      %{
        shortest
        | count: Enum.sum(Enum.map(group, & &1.count)),
          funs: group |> Enum.flat_map(& &1.funs) |> Enum.uniq() |> Enum.sort()
      }
    end)
    |> Enum.sort_by(& &1.signature)
  end

  defp signature(%{what: :raised, detail: {kind, reason, stack}}) do
    "raised #{kind} #{exception_name(kind, reason, stack)} at #{frame(hd(stack ++ [nil]))}" <>
      " via #{frame(Enum.find(stack, &library_frame?/1))}"
  end

  defp signature(%{what: what, call: call, detail: messages})
       when what in [:stray_message, :late_message],
       do: "#{what} #{Enum.map_join(messages, ",", &message_shape/1)} from #{fun_name(call)}"

  # Digits vary (sizes, ports, durations); the message's start names the failure.
  defp signature(%{what: :internal_error, detail: message}),
    do: "internal_error #{message |> String.replace(~r/\d+/, "N") |> clip(70)}"

  defp signature(%{what: :misleading_error, call: call}), do: "misleading_error #{fun_name(call)}"

  defp signature(%{what: :bad_return, call: call, detail: value}),
    do: "bad_return #{fun_name(call)} #{message_shape(value)}"

  defp signature(%{what: what, call: call}), do: "#{what} #{fun_name(call)}"

  defp exception_name(:error, reason, stack) do
    case Exception.normalize(:error, reason, stack) do
      %ErlangError{original: original} -> "ErlangError(#{message_shape(original)})"
      e -> inspect(e.__struct__)
    end
  end

  defp exception_name(kind, value, _stack), do: "#{kind}(#{message_shape(value)})"

  defp frame(nil), do: "?"

  defp frame({mod, fun, arity, _}) when is_list(arity),
    do: "#{inspect(mod)}.#{fun}/#{length(arity)}"

  defp frame({mod, fun, arity, _}), do: "#{inspect(mod)}.#{fun}/#{arity}"

  defp library_frame?({mod, _, _, _}) do
    name = Atom.to_string(mod)
    String.starts_with?(name, "Elixir.ObjectStoreX") and mod != __MODULE__
  end

  # A term's outline: its tag or type, never its contents (which vary from call to call).
  defp message_shape({tag, _}) when is_reference(tag), do: "{ref, _}"

  defp message_shape(t) when is_tuple(t) and tuple_size(t) > 0 and is_atom(elem(t, 0)),
    do: "{#{inspect(elem(t, 0))}, #{tuple_size(t) - 1} more}"

  defp message_shape(t) when is_tuple(t), do: "tuple/#{tuple_size(t)}"
  defp message_shape(t) when is_atom(t), do: inspect(t)
  defp message_shape(%{__struct__: s}), do: "%#{inspect(s)}{}"
  defp message_shape(t) when is_map(t), do: "map"
  defp message_shape(t) when is_list(t), do: "list"
  defp message_shape(t) when is_binary(t), do: "binary"
  defp message_shape(_), do: "term"

  defp fun_name(%{mod: mod, fun: fun, args: args}), do: "#{inspect(mod)}.#{fun}/#{length(args)}"

  defp describe(%{what: :raised, detail: {kind, reason, stack}}) do
    text =
      if kind == :error,
        do: Exception.format_banner(:error, reason, stack),
        else: "#{kind}: #{brief(reason)}"

    "#{clip(text, 400)}\n      at #{stack |> Enum.take(4) |> Enum.map_join(" < ", &frame/1)}"
  end

  defp describe(%{what: what, detail: detail}), do: "#{what}: #{clip(brief(detail), 400)}"

  @doc false
  def format_classes(classes, seed) do
    Enum.map_join(classes, "\n", fn c ->
      """
      FINDING #{c.signature}
        count: #{c.count} in #{Enum.join(c.funs, ", ")}
        #{c.detail}
        repro (shrunk from call #{c.index}; replay that call with OBJECTSTOREX_FUZZ_SEED=#{seed} OBJECTSTOREX_FUZZ_ONLY=#{c.index}):
          #{c.repro}\
      """
    end)
  end

  @doc "One line naming the call and its arguments, short enough for a log."
  def render(%{mod: mod, fun: fun, args: args} = call) do
    text = "#{inspect(mod)}.#{fun}(#{Enum.map_join(args, ", ", &brief/1)})"

    case call do
      %{kind: :sink, chunks: chunks} -> "Enum.into(#{brief(chunks)}, #{text})"
      %{kind: :stream, mode: mode} -> "#{text} |> #{mode}"
      _ -> text
    end
  end

  defp brief(term) do
    labels = :persistent_term.get({__MODULE__, :labels}, %{})

    # Fake stores inspect like real ones, so every store of the run is shown by its label.
    label = fn
      %Store{} = store, opts -> Map.get(labels, store) || Inspect.inspect(store, opts)
      term, opts -> Inspect.inspect(term, opts)
    end

    inspect(term, limit: 12, printable_limit: 80, inspect_fun: label) |> clip(600)
  end

  defp clip(text, max) when byte_size(text) <= max, do: text
  defp clip(text, max), do: binary_part(text, 0, max) <> "...(#{byte_size(text)} bytes)"

  # ---------------------------------------------------------------------------------------------
  # Setup: stores and fixtures

  defp setup(dir) do
    for sub <- ["local", "files", "dl", "roots"], do: File.mkdir_p!(Path.join(dir, sub))

    {:ok, mem} = ObjectStoreX.new(:memory)
    {:ok, mem_prefixed} = ObjectStoreX.new(:memory, prefix: "pre/fix")
    {:ok, local} = ObjectStoreX.new(:local, root: Path.join(dir, "local"))
    {:ok, local_prefixed} = ObjectStoreX.new(:local, root: Path.join(dir, "local"), prefix: "p")

    # A closed loopback port: requests fail at once, with no retries and short timeouts.
    network = [
      allow_http: true,
      connect_timeout: 200,
      timeout: 2_000,
      retry: [max_retries: 0, retry_timeout: 500, init_backoff: 10, max_backoff: 10],
      from_env: false
    ]

    {:ok, s3} =
      ObjectStoreX.new(
        :s3,
        [
          bucket: "fuzz",
          region: "us-east-1",
          endpoint: "http://127.0.0.1:1",
          access_key_id: "fuzz-key",
          secret_access_key: "fuzz-secret"
        ] ++ network
      )

    {:ok, http} = ObjectStoreX.new(:http, [url: "http://127.0.0.1:1/base"] ++ network)

    # Azure signs its requests differently from S3 (every header as ASCII text).
    {:ok, azure} =
      ObjectStoreX.new(
        :azure,
        [
          account: "fuzz",
          container: "fuzz",
          endpoint: "http://127.0.0.1:1",
          access_key: Base.encode64("fuzz-key")
        ] ++ network
      )

    # A resource of the wrong kind: an upload handle where a store is expected.
    {:ok, upload_resource, _, _, native} = ObjectStoreX.Upload.validate(mem, "wrong-kind", [])
    {:ok, upload} = ObjectStoreX.Upload.start(upload_resource, "wrong-kind", native)

    files = Path.join(dir, "files")
    File.write!(Path.join(files, "small.txt"), "hello\nworld\n")
    File.write!(Path.join(files, "empty"), "")
    File.write!(Path.join(files, "medium.bin"), pattern(300 * @kib))
    File.write!(Path.join(files, "new\nline"), "x")
    File.mkdir_p!(Path.join(files, "adir"))
    File.ln_s(Path.join(files, "small.txt"), Path.join(files, "link"))
    File.write!(Path.join(dir, "dl/existing"), "old")

    fakes = [
      {%Store{backend: :memory, resource: make_ref()},
       "%Store{backend: :memory, resource: make_ref()}"},
      {%Store{backend: :local, resource: nil}, "%Store{backend: :local, resource: nil}"},
      {%Store{backend: :memory, resource: upload}, "%Store{backend: :memory, resource: UPLOAD}"},
      {%Store{mem | backend: :bogus}, "%Store{MEM | backend: :bogus}"}
    ]

    :persistent_term.put(
      {__MODULE__, :labels},
      Map.new(
        [
          {mem, "MEM"},
          {mem_prefixed, "MEM_PREFIXED"},
          {local, "LOCAL"},
          {local_prefixed, "LOCAL_PREFIXED"},
          {s3, "S3_CLOSED_PORT"},
          {azure, "AZURE_CLOSED_PORT"},
          {http, "HTTP_CLOSED_PORT"}
        ] ++ fakes
      )
    )

    ctx = %{
      dir: dir,
      mem: mem,
      local: local,
      stores: [mem, mem, mem_prefixed, local, local, local_prefixed, s3, azure, http],
      fixture_stores: [mem, mem_prefixed, local, local_prefixed],
      fake_stores:
        Enum.map(fakes, &elem(&1, 0)) ++
          [
            %URI{},
            %Meta{},
            %PutResult{}
          ],
      dead_pid: spawn(fn -> :ok end),
      long: String.duplicate("a", 64 * @kib),
      block: pattern(64 * @kib),
      gz: :zlib.gzip(lines_text())
    }

    :ok = ObjectStoreX.put(mem, "src/long.bin", pattern(256 * @kib))
    put_fixtures(ctx)
    ctx
  end

  defp put_fixtures(ctx) do
    data = %{
      "fx/empty" => "",
      "fx/small.txt" => "line1\nline2\r\nlast",
      "fx/lines.txt" => lines_text(),
      "fx/long.bin" => pattern(256 * @kib),
      "fx/data.gz" => ctx.gz,
      "fx/dir/a" => "a",
      "fx/dir/sub/b" => "b"
    }

    # Fuzzed calls write under fx/ too, and on a local store an object at "fx/dir" or below
    # "fx/empty" turns a fixture's directory into a file or its file into a directory: the
    # local fixtures are laid anew.
    for root <- [Path.join(ctx.dir, "local"), Path.join([ctx.dir, "local", "p"])],
        do: File.rm_rf!(Path.join(root, "fx"))

    for store <- ctx.fixture_stores,
        {path, bytes} <- data,
        do: :ok = ObjectStoreX.put(store, path, bytes)

    :ok
  end

  defp lines_text, do: Enum.map_join(1..2_000, "", &"line #{&1}\n")

  defp pattern(n), do: :binary.copy(:binary.list_to_bin(Enum.to_list(0..255)), div(n, 256))

  # ---------------------------------------------------------------------------------------------
  # Random choices

  defp pick(list), do: Enum.at(list, :rand.uniform(length(list)) - 1)
  defp chance(p), do: :rand.uniform() < p

  # `valid` most of the time, so that many calls get past validation to the native side.
  defp mostly(valid, hostile), do: if(chance(0.75), do: valid.(), else: hostile.())

  defp junk(ctx) do
    pick(
      [
        nil,
        true,
        false,
        :foo,
        :infinity,
        {},
        {1},
        {1, 2},
        {:ok, "x"},
        %{},
        %{a: 1},
        %{"k" => "v"},
        self(),
        ctx.dead_pid,
        make_ref(),
        1.5,
        -0.0,
        1.0e300,
        ~c"abc",
        [?a | "b"],
        [[1, [2, [3]]]],
        [1, 2, 3],
        [],
        [nil],
        <<255, 254>>,
        "",
        "x",
        <<0>>,
        <<1::3>>,
        ctx.long,
        %URI{},
        %Meta{},
        ~D[2020-01-01],
        fn -> :ok end,
        &Kernel.+/2
      ] ++ boundary_ints()
    )
  end

  defp boundary_ints do
    [
      -1,
      0,
      1,
      2 ** 31,
      2 ** 32 - 1,
      2 ** 32,
      2 ** 63 - 1,
      2 ** 63,
      2 ** 64 - 1,
      2 ** 64,
      2 ** 64 + 1,
      2 ** 70,
      -(2 ** 64)
    ]
  end

  defp hostile_string(ctx) do
    pick([
      "",
      <<255, 254>>,
      "a" <> <<0xC0>>,
      "a\0b",
      "line\r\nInjected: 1",
      "\n",
      "\t",
      "\x7f",
      "é/ü/日本",
      "%2F%00",
      "..",
      "../x",
      "//",
      ctx.long,
      String.duplicate("é", 20_000)
    ])
  end

  defp str(ctx, valid),
    do: mostly(fn -> pick(valid) end, fn -> pick([hostile_string(ctx), junk(ctx)]) end)

  # Sizes: small valid ones mostly, and boundaries up to 2^70 that must never be allocated.
  defp size(ctx, valid) do
    mostly(fn -> pick(valid) end, fn ->
      pick([pick(boundary_ints()), 2 ** 40, 2 ** 36, 2 ** 33, 5 * @mib - 1, junk(ctx)])
    end)
  end

  defp timeout(ctx) do
    mostly(fn -> pick([5_000, 5_000, 2_000, 1, 0]) end, fn ->
      pick([-1, 2 ** 32 - 1, 2 ** 32, 2 ** 64, 2 ** 70, :infinity, "x", 1.5, nil, junk(ctx)])
    end)
  end

  defp store(ctx),
    do: mostly(fn -> pick(ctx.stores) end, fn -> pick(ctx.fake_stores ++ [junk(ctx)]) end)

  defp object_path(ctx) do
    mostly(
      fn ->
        if chance(0.6),
          do: pick(@fixture_paths),
          else: pick(["w/#{:rand.uniform(20)}", "fx/new", "w/dir/x", "fx/dir", "fx"])
      end,
      fn ->
        pick([
          hostile_string(ctx),
          pick([".", "/", "/lead", "trail/", "a//b", "a/../b", "./a", "a/./b", "*", "?", "\\"]),
          String.duplicate("d/", 1_000) <> "x",
          junk(ctx)
        ])
      end
    )
  end

  defp range(ctx) do
    mostly(
      fn -> pick([{0, 0}, {0, 10}, {3, 100_000}, {:offset, 3}, {:suffix, 5}, {:offset, 0}]) end,
      fn ->
        pick([
          {5, 2},
          {-1, 3},
          {0, 2 ** 64},
          {0, 2 ** 64 - 1},
          {2 ** 63, 2 ** 63},
          {2 ** 64, 2 ** 64 + 5},
          {:offset, -1},
          {:offset, 2 ** 64},
          {:suffix, 2 ** 64},
          {:suffix, 0},
          {:bogus, 1},
          {1, 2, 3},
          [0, 1],
          0..5,
          "0-5",
          {1.0, 2},
          junk(ctx)
        ])
      end
    )
  end

  defp callback(ctx) do
    pick([fn _ -> :ok end, fn _ -> :ok end, nil, fn -> :ok end, fn _, _ -> :ok end, junk(ctx)])
  end

  # A keyword list of the given keys with generated values, or something that is not one.
  defp opts(_ctx, gens, default_timeout? \\ true) do
    cond do
      chance(0.06) ->
        pick([
          %{timeout: 1},
          [1, 2],
          [{"timeout", 1}],
          [:timeout],
          [{:timeout, 1} | :tail],
          [{:timeout, 1, 2}],
          :timeout,
          nil,
          "opts",
          <<255>>,
          ~c"abc"
        ])

      true ->
        chosen = for {key, gen} <- gens, chance(0.3), do: {key, gen.()}

        chosen =
          if default_timeout? and Keyword.has_key?(gens, :timeout) and
               not Keyword.has_key?(chosen, :timeout),
             do: [{:timeout, 5_000} | chosen],
             else: chosen

        chosen = if chance(0.05), do: chosen ++ [{pick([:bogus, :Timeout, nil]), 1}], else: chosen

        if chance(0.03) and chosen != [],
          do: chosen ++ [hd(Enum.shuffle(chosen))],
          else: Enum.shuffle(chosen)
    end
  end

  defp put_gens(ctx) do
    [
      mode: fn ->
        mostly(fn -> pick([:overwrite, :create, {:update, "\"0\""}]) end, fn ->
          pick([
            {:update, %PutResult{}},
            {:update, %{etag: 1}},
            {:update, %{}},
            {:update, nil},
            {:update, <<255>>},
            :update,
            junk(ctx)
          ])
        end)
      end,
      content_type: fn -> str(ctx, ["text/plain", "application/octet-stream"]) end,
      content_encoding: fn -> str(ctx, ["gzip"]) end,
      content_disposition: fn -> str(ctx, ["attachment"]) end,
      content_language: fn -> str(ctx, ["en"]) end,
      cache_control: fn -> str(ctx, ["no-cache"]) end,
      metadata: fn -> string_map(ctx) end,
      tags: fn -> string_map(ctx) end,
      timeout: fn -> timeout(ctx) end
    ]
  end

  defp string_map(ctx) do
    mostly(fn -> pick([%{"k" => "v"}, %{}, %{"a" => "1", "b" => "2"}]) end, fn ->
      pick([
        %{"k" => <<255>>},
        %{<<255>> => "v"},
        %{"" => ""},
        %{"a\nb" => "x\r\ny"},
        %{k: "v"},
        %{"k" => 1},
        [{"k", "v"}],
        Map.new(1..1_000, &{"k#{&1}", "v"}),
        junk(ctx)
      ])
    end)
  end

  defp upload_gens(ctx) do
    put_gens(ctx)
    |> Keyword.delete(:mode)
    |> Keyword.merge(
      part_size: fn -> size(ctx, [5 * @mib, 8 * @mib, 64 * @mib]) end,
      max_concurrency: fn -> size(ctx, [1, 2, 4]) end,
      size_hint: fn -> size(ctx, [0, 10, 300 * @kib]) end,
      hash: fn -> hash(ctx) end,
      on_progress: fn -> callback(ctx) end,
      on_complete: fn -> callback(ctx) end
    )
  end

  defp hash(ctx),
    do:
      mostly(fn -> pick([:sha256, :sha1, :md5, :crc32c]) end, fn ->
        pick([:bogus, "sha256", junk(ctx)])
      end)

  defp download_gens(ctx) do
    [
      # Odd small sizes, but not 1: a byte per chunk over the 256 KiB fixture is 262,144
      # messages, seconds of legitimate work that the per-call bound would call a hang.
      chunk_size: fn -> size(ctx, [7, 13, 4 * @kib, 64 * @kib, @mib]) end,
      prefetch: fn -> size(ctx, [1, 2, 8]) end,
      concurrency: fn -> size(ctx, [1, 2, 4]) end,
      range: fn -> range(ctx) end,
      timeout: fn -> timeout(ctx) end,
      hash: fn -> hash(ctx) end,
      verify: fn ->
        str(ctx, ["00", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"])
      end,
      on_progress: fn -> callback(ctx) end,
      on_complete: fn -> callback(ctx) end
    ]
  end

  defp list_gens(ctx) do
    [
      prefix: fn -> str(ctx, ["fx", "fx/", "fx/dir", "/fx/", "w", "none"]) end,
      offset: fn -> str(ctx, ["fx/dir/a", "fx/a", "zzz"]) end,
      timeout: fn -> timeout(ctx) end
    ]
  end

  defp chunks(ctx) do
    mostly(
      fn -> for _ <- 0..:rand.uniform(6), do: pick(["abc", "", ["a", ["b", ?c]], ctx.block]) end,
      fn ->
        pick([
          [[256]],
          [:a],
          [1],
          [<<1::3>>],
          ["ok", nil],
          [[[[[["deep"]]]]]],
          [ctx.long, ctx.long],
          1..3,
          %{"a" => "b"},
          MapSet.new(["a"]),
          Stream.map(["a", "b"], & &1),
          # A valid source that no generated call can remove: a source that raises would have
          # its exception re-raised, by design.
          ObjectStoreX.Stream.download(ctx.mem, "src/long.bin", chunk_size: 4096)
        ])
      end
    )
  end

  defp local_source(ctx) do
    files = Path.join(ctx.dir, "files")

    mostly(
      fn -> Path.join(files, pick(["small.txt", "empty", "medium.bin", "link"])) end,
      fn ->
        pick([
          Path.join(files, pick(["adir", "missing", "new\nline", String.duplicate("n", 300)])),
          Path.join(files, <<255>>),
          "",
          "small.txt",
          Path.join(files, ctx.long),
          junk(ctx)
        ])
      end
    )
  end

  defp local_target(ctx) do
    dl = Path.join(ctx.dir, "dl")

    mostly(
      fn -> Path.join(dl, pick(["f#{:rand.uniform(10)}", "existing", "sub/../g"])) end,
      fn ->
        pick([
          dl,
          Path.join(dl, "missing-dir/x"),
          Path.join(dl, String.duplicate("n", 300)),
          Path.join(dl, "a\nb"),
          Path.join(dl, <<255>>),
          "",
          "relative-target",
          junk(ctx)
        ])
      end
    )
  end

  # ---------------------------------------------------------------------------------------------
  # Calls

  @plain [
    :new,
    :from_url,
    :put,
    :put_with_result,
    :get,
    :head,
    :get_ranges,
    :delete,
    :delete_many,
    :copy,
    :rename,
    :copy_if_not_exists,
    :rename_if_not_exists,
    :list,
    :list_with_delimiter,
    :upload_file,
    :download_file,
    :transfer,
    :sign_url
  ]
  @streams [:download, :lines, :list_stream, :get_many, :put_many]

  defp gen_call(ctx) do
    roll = :rand.uniform()

    cond do
      roll < 0.62 ->
        fun = pick(@plain)
        %{mod: ObjectStoreX, fun: fun, args: args(ctx, fun), kind: :plain}

      roll < 0.72 ->
        fun = pick(@plain)
        %{mod: ObjectStoreX, fun: :"#{fun}!", args: args(ctx, fun), kind: :bang}

      roll < 0.90 ->
        fun = pick(@streams)

        %{
          mod: ObjectStoreX.Stream,
          fun: fun,
          args: args(ctx, fun),
          kind: :stream,
          mode: pick([:build, :to_list, :to_list, :take1, :take1, :run, :halt2, :twice, :zip])
        }

      roll < 0.96 ->
        %{mod: ObjectStoreX.Stream, fun: :upload, args: args(ctx, :upload), kind: :plain}

      true ->
        %{
          mod: ObjectStoreX.Stream,
          fun: :upload_sink,
          args: args(ctx, :upload_sink),
          kind: :sink,
          chunks: chunks(ctx)
        }
    end
  end

  defp args(ctx, :new) do
    provider =
      mostly(fn -> pick([:memory, :local, :local, :s3, :gcs, :azure, :http]) end, fn ->
        pick([:bogus, "s3", nil, junk(ctx)])
      end)

    opts = opts(ctx, store_gens(ctx, provider), false)

    # Half of the network stores get an address on this machine and no retries, when they
    # have none, so that the store built is probed with a request (see execute/1).
    opts =
      if provider in [:s3, :azure, :http] and is_list(opts) and Keyword.keyword?(opts) and
           chance(0.5) do
        key = if provider == :http, do: :url, else: :endpoint

        opts
        |> Keyword.put_new(key, "http://127.0.0.1:1")
        |> Keyword.put_new(:allow_http, true)
        |> Keyword.put_new(:retry, max_retries: 0)
      else
        opts
      end

    [provider, opts]
  end

  defp args(ctx, :from_url) do
    url =
      mostly(
        fn ->
          pick([
            "memory://",
            "memory://x/y",
            "file://#{ctx.dir}/roots/u#{:rand.uniform(5)}",
            "s3://bucket/p",
            "s3a://bucket",
            "gs://b/p",
            "az://c/p",
            "abfs://c@127.0.0.1/p",
            "http://127.0.0.1:1/x",
            "https://[::1]:1/"
          ])
        end,
        fn ->
          pick([
            "",
            "::",
            "file://",
            "file://relative",
            "file://#{ctx.dir}/roots/%FF",
            "file://#{ctx.dir}/roots/a%00b",
            "s3://",
            "s3:///key",
            "abfs://127.0.0.1",
            "HTTP://127.0.0.1:1",
            "http://[::1",
            "memory://" <> <<255>>,
            "ftp://127.0.0.1/x",
            "http://127.0.0.1:1/" <> ctx.long,
            junk(ctx)
          ])
        end
      )

    provider = pick([:memory, :local, :s3, :gcs, :azure, :http])
    [url, opts(ctx, store_gens(ctx, provider), false)]
  end

  defp args(ctx, fun) when fun in [:put, :put_with_result],
    do: [store(ctx), object_path(ctx), data(ctx), opts(ctx, put_gens(ctx))]

  defp args(ctx, :get_many) do
    gens =
      get_gens(ctx)
      |> Keyword.drop([:if_match, :if_none_match, :version])
      |> Keyword.merge(many_gens(ctx))

    paths =
      mostly(fn -> Enum.map(1..:rand.uniform(40), fn _ -> object_path(ctx) end) end, fn ->
        pick([[], Stream.map(1..5, fn _ -> object_path(ctx) end), source_junk(ctx)])
      end)

    [store(ctx), paths, opts(ctx, gens)]
  end

  defp args(ctx, :put_many) do
    entries =
      mostly(
        fn -> Enum.map(1..:rand.uniform(40), fn _ -> {object_path(ctx), data(ctx)} end) end,
        fn -> pick([[], [junk(ctx)], [{object_path(ctx)}], source_junk(ctx)]) end
      )

    [store(ctx), entries, opts(ctx, put_gens(ctx) ++ many_gens(ctx))]
  end

  defp args(ctx, :get), do: [store(ctx), object_path(ctx), opts(ctx, get_gens(ctx))]

  defp args(ctx, fun) when fun in [:head, :delete],
    do: [store(ctx), object_path(ctx), opts(ctx, timeout: fn -> timeout(ctx) end)]

  defp args(ctx, :get_ranges) do
    ranges =
      mostly(
        fn -> for _ <- 1..:rand.uniform(6), do: range(ctx) end,
        fn ->
          pick([
            [],
            List.duplicate({0, 1}, 2_000),
            [{0, 1} | {2, 3}],
            {0, 1},
            junk(ctx)
          ])
        end
      )

    [store(ctx), object_path(ctx), ranges, opts(ctx, timeout: fn -> timeout(ctx) end)]
  end

  defp args(ctx, :delete_many) do
    paths =
      mostly(
        fn -> for _ <- 0..:rand.uniform(8), do: object_path(ctx) end,
        fn ->
          pick([
            List.duplicate("w/none", 1_200),
            ["w/1" | "w/2"],
            "w/1",
            junk(ctx)
          ])
        end
      )

    [store(ctx), paths, opts(ctx, timeout: fn -> timeout(ctx) end)]
  end

  defp args(ctx, fun) when fun in [:copy, :rename, :copy_if_not_exists, :rename_if_not_exists],
    do: [
      store(ctx),
      object_path(ctx),
      object_path(ctx),
      opts(ctx, timeout: fn -> timeout(ctx) end)
    ]

  defp args(ctx, fun) when fun in [:list, :list_with_delimiter],
    do: [store(ctx), opts(ctx, list_gens(ctx))]

  defp args(ctx, :upload_file),
    do: [store(ctx), object_path(ctx), local_source(ctx), opts(ctx, upload_gens(ctx))]

  defp args(ctx, :download_file) do
    gens = [
      chunk_size: fn -> size(ctx, [7, 13, 4 * @kib, 64 * @kib]) end,
      concurrency: fn -> size(ctx, [1, 2, 8]) end,
      on_progress: fn -> callback(ctx) end,
      timeout: fn -> timeout(ctx) end
    ]

    [store(ctx), object_path(ctx), local_target(ctx), opts(ctx, gens)]
  end

  defp args(ctx, :transfer),
    do: [store(ctx), object_path(ctx), store(ctx), object_path(ctx), opts(ctx, upload_gens(ctx))]

  defp args(ctx, :sign_url) do
    method =
      mostly(fn -> pick([:get, :put, :delete, :head, :post]) end, fn ->
        pick([:patch, "GET", nil, junk(ctx)])
      end)

    expires =
      mostly(fn -> pick([1, 60, 3_600, 604_800]) end, fn ->
        pick([0, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64, 2 ** 70, 1.5, "60", junk(ctx)])
      end)

    [store(ctx), method, object_path(ctx), expires]
  end

  defp args(ctx, :download), do: [store(ctx), object_path(ctx), opts(ctx, download_gens(ctx))]

  defp args(ctx, :lines) do
    gens =
      download_gens(ctx) ++
        [
          decompress: fn ->
            mostly(fn -> pick([nil, :gzip]) end, fn -> pick([:zlib, "gzip", junk(ctx)]) end)
          end,
          max_line_length: fn -> size(ctx, [1, 8, 100, @mib]) end
        ]

    [store(ctx), object_path(ctx), opts(ctx, gens)]
  end

  defp args(ctx, :list_stream) do
    gens =
      list_gens(ctx) ++
        [
          page_size: fn -> size(ctx, [1, 2, 1000]) end,
          prefetch: fn -> size(ctx, [1, 2, 8]) end
        ]

    [store(ctx), opts(ctx, gens)]
  end

  defp args(ctx, :upload),
    do: [chunks(ctx), store(ctx), object_path(ctx), opts(ctx, upload_gens(ctx))]

  defp args(ctx, :upload_sink), do: [store(ctx), object_path(ctx), opts(ctx, upload_gens(ctx))]

  defp data(ctx) do
    mostly(fn -> pick(["data", "", ["a", ["b" | "c"]], ctx.block]) end, fn ->
      pick([[256], [:a], <<1::3>>, [-1], [[[["x"]]]], junk(ctx)])
    end)
  end

  # Junk as a source of items. A function of arity 2 is a stream by Enumerable's definition:
  # what `&Kernel.+/2` raises when enumerated is the caller's own exception, re-raised as
  # `Enum` would, so it is left out.
  defp source_junk(ctx) do
    case junk(ctx) do
      fun when is_function(fun, 2) -> fn -> :ok end
      other -> other
    end
  end

  defp many_gens(ctx) do
    [
      max_concurrency: fn -> size(ctx, [1, 2, 16, 1_000]) end,
      ordered: fn -> mostly(fn -> pick([true, false]) end, fn -> junk(ctx) end) end
    ]
  end

  defp get_gens(ctx) do
    [
      range: fn -> range(ctx) end,
      if_match: fn -> str(ctx, ["\"0\"", "*", "x"]) end,
      if_none_match: fn -> str(ctx, ["\"0\"", "*"]) end,
      if_modified_since: fn -> datetime(ctx) end,
      if_unmodified_since: fn -> datetime(ctx) end,
      version: fn -> str(ctx, ["v1"]) end,
      head: fn -> mostly(fn -> pick([true, false]) end, fn -> junk(ctx) end) end,
      timeout: fn -> timeout(ctx) end
    ]
  end

  defp datetime(ctx) do
    mostly(
      fn -> pick([~U[2020-01-01 00:00:00Z], DateTime.utc_now(), ~U[9999-12-31 23:59:59Z]]) end,
      fn ->
        pick([
          ~N[2020-01-01 00:00:00],
          ~D[2020-01-01],
          DateTime.from_unix!(-377_705_116_800),
          "2020-01-01T00:00:00Z",
          junk(ctx)
        ])
      end
    )
  end

  # Store options for `provider`: the valid keys with valid or hostile values. Paths and URLs
  # stay under the run's directory or on loopback.
  defp store_gens(ctx, provider) do
    common = [prefix: fn -> str(ctx, ["p", "a/b", "/", "//x//"]) end]

    local = [
      root: fn ->
        mostly(fn -> Path.join([ctx.dir, "roots", "r#{:rand.uniform(5)}"]) end, fn ->
          pick([
            "",
            "relative-root",
            Path.join([ctx.dir, "files", "small.txt"]),
            Path.join([ctx.dir, "roots", ctx.long]),
            Path.join([ctx.dir, "roots", <<255>>]),
            Path.join([ctx.dir, "roots", "a\0b"]),
            junk(ctx)
          ])
        end)
      end
    ]

    url = fn ->
      mostly(
        fn -> pick(["http://127.0.0.1:1", "http://localhost:1/x", "https://[::1]:1"]) end,
        fn -> pick(@malformed_loopback ++ [hostile_string(ctx), junk(ctx)]) end
      )
    end

    duration = fn -> size(ctx, [1, 100, 5_000]) end

    network = [
      timeout: duration,
      connect_timeout: duration,
      read_timeout: duration,
      pool_idle_timeout: duration,
      proxy_url: url,
      allow_http: fn -> mostly(fn -> pick([true, false]) end, fn -> junk(ctx) end) end,
      from_env: fn -> mostly(fn -> false end, fn -> junk(ctx) end) end,
      retry: fn ->
        mostly(
          fn -> [max_retries: 0, retry_timeout: 100] end,
          fn ->
            pick([
              [max_retries: 2 ** 64],
              [retry_timeout: 2 ** 64 + 1],
              [init_backoff: -1],
              [base: 0],
              [base: 1.0e308],
              [max_backoff: 2 ** 70],
              [bogus: 1],
              %{max_retries: 1},
              junk(ctx)
            ])
          end
        )
      end
    ]

    specific =
      case provider do
        :local ->
          local

        :http ->
          [url: url] ++ network

        :s3 ->
          [
            bucket: fn -> str(ctx, ["b", "bucket.with.dots"]) end,
            region: fn -> str(ctx, ["us-east-1"]) end,
            endpoint: url,
            access_key_id: fn -> str(ctx, ["k"]) end,
            secret_access_key: fn -> str(ctx, ["s"]) end,
            virtual_hosted_style_request: fn -> mostly(fn -> true end, fn -> junk(ctx) end) end,
            conditional_put: fn -> str(ctx, ["etag", "disabled", "bogus"]) end,
            copy_if_not_exists: fn -> str(ctx, ["multipart", "header:a:b", "bogus"]) end,
            checksum_algorithm: fn -> str(ctx, ["sha256", "md5"]) end
          ] ++ network

        :gcs ->
          [
            bucket: fn -> str(ctx, ["b"]) end,
            service_account_path: fn -> str(ctx, [Path.join([ctx.dir, "files", "small.txt"])]) end,
            service_account_key: fn -> str(ctx, ["{}", "not json"]) end
          ] ++ network

        :azure ->
          [
            account: fn -> str(ctx, ["acct"]) end,
            container: fn -> str(ctx, ["c"]) end,
            access_key: fn -> str(ctx, ["a2V5", "not base64!"]) end,
            use_emulator: fn -> mostly(fn -> true end, fn -> junk(ctx) end) end,
            endpoint: url
          ] ++ network

        _ ->
          local ++ [url: url]
      end

    common ++ specific
  end
end
